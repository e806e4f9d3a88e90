/*
 * select_client HOST PORT
 *
 * The smallest kind of heartbeat client there is, written for vigil's tests
 * of `vigil serve --protocol raw`: a loop around select() on standard input
 * with a two-second timeout.
 *
 *   - two seconds without input: send the line "beat\n";
 *   - input: send what was read, as it came (lines typed are messages);
 *   - end of input: stop watching it and go on beating until killed.
 *
 * The socket is never read, and select() never watches it: whatever the
 * server answers stays queued in this process's kernel. A socket closed with
 * unread data ends its connection with a reset (RST) instead of a FIN, so
 * when this process is killed vigil logs the peer as `offline: reset`. That
 * is on purpose: it is how the seeds' own client behaves, and the test
 * checks that vigil tells the truth about it.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#define IDLE_SECONDS 2

/* A connected TCP socket to the first address of HOST:PORT that answers,
 * or -1. */
static int dial(const char *host, const char *port)
{
    struct addrinfo want;
    struct addrinfo *found;
    struct addrinfo *at;
    int fd = -1;

    memset(&want, 0, sizeof want);
    want.ai_family = AF_UNSPEC;
    want.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &want, &found) != 0)
        return -1;
    for (at = found; at != NULL && fd == -1; at = at->ai_next) {
        fd = socket(at->ai_family, at->ai_socktype, at->ai_protocol);
        if (fd != -1 && connect(fd, at->ai_addr, at->ai_addrlen) == -1) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(found);
    return fd;
}

/* Writes all of BYTES, or returns -1. MSG_NOSIGNAL: a peer that has gone
 * is an error to report, not a SIGPIPE. */
static int send_all(int fd, const char *bytes, size_t count)
{
    while (count > 0) {
        ssize_t sent = send(fd, bytes, count, MSG_NOSIGNAL);
        if (sent == -1) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        bytes += sent;
        count -= (size_t)sent;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const char beat[] = "beat\n";
    char input[1024];
    int watching_input = 1;
    int fd;

    if (argc != 3) {
        fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
        return 2;
    }
    fd = dial(argv[1], argv[2]);
    if (fd == -1) {
        fprintf(stderr, "select_client: cannot connect to %s port %s\n", argv[1], argv[2]);
        return 1;
    }
    for (;;) {
        fd_set readable;
        struct timeval wait = { IDLE_SECONDS, 0 };
        const char *out = beat;
        size_t len = sizeof beat - 1;
        int ready;

        FD_ZERO(&readable);
        if (watching_input)
            FD_SET(STDIN_FILENO, &readable);
        ready = select(watching_input ? STDIN_FILENO + 1 : 0, &readable, NULL, NULL, &wait);
        if (ready == -1) {
            if (errno == EINTR)
                continue;
            perror("select_client: select");
            return 1;
        }
        if (ready > 0) {
            /* read(), not stdio: a stdio buffer would hold lines that
             * select() can no longer see. */
            ssize_t got = read(STDIN_FILENO, input, sizeof input);
            if (got == -1 && errno == EINTR)
                continue;
            if (got <= 0) {
                watching_input = 0;
                continue;
            }
            out = input;
            len = (size_t)got;
        }
        if (send_all(fd, out, len) == -1) {
            perror("select_client: send");
            return 1;
        }
    }
}
