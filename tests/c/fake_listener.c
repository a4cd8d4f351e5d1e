/*
 * For tests/tests/security.rs: a process that is not the broker listening on a socket path (run
 * as another user), to show that clients send it nothing. Binds PATH, prints "listening", accepts
 * one connection (10 s at most), reads for up to 2 s, prints "received N" (bytes) and exits.
 * No CUDA.
 */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fake_listener PATH\n");
        return 2;
    }
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 4) != 0) {
        perror("fake_listener");
        return 1;
    }
    printf("listening\n");
    fflush(stdout);
    struct pollfd p = {.fd = s, .events = POLLIN};
    if (poll(&p, 1, 10000) != 1) {
        printf("received none (no connection)\n");
        return 0;
    }
    int c = accept(s, NULL, NULL);
    long total = 0;
    char buf[4096];
    struct pollfd q = {.fd = c, .events = POLLIN};
    while (poll(&q, 1, 2000) == 1) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n <= 0) {
            break;
        }
        total += n;
    }
    printf("received %ld\n", total);
    return 0;
}
