"""The status page in headless Chromium, driven by Selenium.

Usage: status_page.py PAGE_URL HEARTBEAT_ADDR HELD SCREENSHOT

Checks the page shows HELD connections, that a client saying HELLO shows in
the live events within a second, that the search box finds it; writes a
screenshot. Prints "ok: ..." lines; exits non-zero on the first failure.
"""
import os
import socket
import sys
import time

import chromium
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

url, hb_addr, held, shot = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
host, port = hb_addr.rsplit(":", 1)

driver, profile = chromium.start(1280, 900)
try:
    driver.get(url)
    wait = WebDriverWait(driver, 15, poll_frequency=0.05)
    text = lambda id: driver.find_element(By.ID, id).text
    wait.until(lambda d: text("conn") == "live")
    wait.until(lambda d: text("n-connections") == held)
    print(f"ok: connections {held}")

    client = f"browser-{os.getpid()}"
    s = socket.create_connection((host, int(port)), timeout=5)
    said = time.monotonic()
    s.sendall(f"HELLO {client}\n".encode())
    WebDriverWait(driver, 1.0, poll_frequency=0.02).until(
        lambda d: any(client in li.text and "hello" in li.text
                      for li in d.find_elements(By.CSS_SELECTOR, "#events li")))
    print(f"ok: {client} in the live events after {time.monotonic() - said:.3f}s")

    box = driver.find_element(By.ID, "q")
    box.send_keys(client)
    driver.find_element(By.CSS_SELECTOR, "#find button").click()
    wait.until(lambda d: text("found").startswith("online: " + client))
    print("ok: search found it: " + text("found").replace("\n", "; "))
    box.clear()
    box.send_keys("nobody-here")
    driver.find_element(By.CSS_SELECTOR, "#find button").click()
    wait.until(lambda d: text("found") == "offline: nobody-here")
    print("ok: search says offline for an unknown id")
    box.clear()
    box.send_keys(client)
    driver.find_element(By.CSS_SELECTOR, "#find button").click()
    wait.until(lambda d: text("found").startswith("online: " + client))
    # Let a few samples draw before the picture.
    time.sleep(2)
    driver.save_screenshot(shot)
    print(f"ok: screenshot {shot}")
    s.close()
finally:
    driver.quit()
    chromium.cleanup(profile)
