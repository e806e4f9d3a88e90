"""examples/browser.html in headless Chromium, driven by Selenium, on
commands from tests/browser.rs.

Usage: browser_page.py EXAMPLES_DIR

Serves EXAMPLES_DIR over http on 127.0.0.1, an ephemeral port (a page from
a data: URL did not connect), starts Chromium, prints
"ready" and then reads one command a line from stdin:

  open QUERY            load browser.html?QUERY
  wait SECONDS PREFIX   until window.vigilState starts with PREFIX
  page                  the page's state, log and whether it offers "reconnect"
  say TEXT              type TEXT in the message box and press "send"
  click ID              click the element with id ID
  freeze                SIGSTOP every Chromium process (a browser that hangs:
                        no pong, no close, the TCP connection stays up)
  thaw                  SIGCONT them again
  quit                  quit the browser (driver.quit(): Chromium ends)

and answers each with "reply N ok JSON" or "reply N fail JSON", N counting
the commands from 1. It exits at the end of stdin, on SIGTERM, or after
DEADLINE seconds, and quits the browser whichever comes first.
"""
import functools
import http.server
import json
import os
import signal
import sys
import threading
import time

import chromium
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

DEADLINE = 55


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def stop(signum, frame):
    # Raised in the main thread: the finally below quits the browser.
    raise SystemExit(f"signal {signum}")


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGALRM, stop)
signal.alarm(DEADLINE)

httpd = http.server.ThreadingHTTPServer(
    ("127.0.0.1", 0), functools.partial(Quiet, directory=sys.argv[1]))
threading.Thread(target=httpd.serve_forever, daemon=True).start()
base = f"http://127.0.0.1:{httpd.server_address[1]}/browser.html"

driver, profile = chromium.start(1000, 800)
alive = True
frozen = []


def chromium_pids():
    """The processes below chromedriver (ours), by their parent ids."""
    children = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:  # gone meanwhile
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], list(children.get(driver.service.process.pid, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def thaw():
    for pid in frozen:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    frozen.clear()


def page():
    return {
        "state": driver.execute_script("return window.vigilState || ''"),
        "title": driver.title,
        "log": driver.execute_script("return window.vigilLog || []"),
        "reconnect": driver.find_element(By.ID, "reconnect").is_displayed(),
    }


def run(words):
    global alive
    cmd = words[0]
    if cmd == "open":
        driver.get(f"{base}?{words[1]}")
        return True, {"url": driver.current_url}
    if cmd == "wait":
        within, prefix = float(words[1]), " ".join(words[2:])
        start = time.monotonic()
        try:
            WebDriverWait(driver, within, poll_frequency=0.02).until(
                lambda d: d.execute_script("return window.vigilState || ''").startswith(prefix))
        except Exception:
            return False, {"waited": within, **page()}
        return True, {"after": round(time.monotonic() - start, 3), **page()}
    if cmd == "page":
        return True, page()
    if cmd == "say":
        box = driver.find_element(By.ID, "msg")
        box.send_keys(" ".join(words[1:]))
        driver.find_element(By.CSS_SELECTOR, "#say button").click()
        return box.get_attribute("value") == "", page()
    if cmd == "click":
        driver.find_element(By.ID, words[1]).click()
        return True, page()
    if cmd == "freeze":
        frozen.extend(chromium_pids())
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        return bool(frozen), {"stopped": len(frozen)}
    if cmd == "thaw":
        n = len(frozen)
        thaw()
        return True, {"continued": n}
    if cmd == "quit":
        start = time.monotonic()
        alive = False
        driver.quit()
        return True, {"took": round(time.monotonic() - start, 3)}
    return False, {"unknown": cmd}


try:
    print("ready", base, flush=True)
    n = 0
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        n += 1
        try:
            ok, answer = run(words)
        except Exception as e:  # answered, so the test shows what broke
            ok, answer = False, {"error": repr(e)}
        print(f"reply {n} {'ok' if ok else 'fail'} {json.dumps(answer)}", flush=True)
finally:
    thaw()
    if alive:
        driver.quit()
    httpd.shutdown()
    chromium.cleanup(profile)
