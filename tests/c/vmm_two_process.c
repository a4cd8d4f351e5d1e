/*
 * Family g: sharing VMM memory between two processes through a POSIX file descriptor.
 *
 * The parent creates physical memory (requestedHandleTypes = POSIX_FILE_DESCRIPTOR), maps it,
 * writes pattern A, exports it with cuMemExportToShareableHandle, then fork()s and immediately
 * exec()s itself as a child (CUDA must not be used in a forked child without exec). The fd goes to
 * the child over a unix socketpair (SCM_RIGHTS). The child imports it with
 * cuMemImportFromShareableHandle((void *)(uintptr_t)fd, POSIX_FILE_DESCRIPTOR), maps it, checks
 * pattern A, writes pattern B and replies. The parent then sees pattern B in its own mapping.
 *
 * Semantics assumed (CUDA Driver API reference, 12.9): for CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR
 * the shareable handle is an int fd; importing it in another process yields a handle to the same
 * physical memory, which that process maps with cuMemMap/cuMemSetAccess like its own.
 * Every wait is bounded (alarm + poll timeouts) so a hang fails the test.
 */
#include "common.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define MiB (1024ull * 1024ull)

static uint32_t pattern_a(size_t i)
{
    return (uint32_t)(i * 2654435761u) ^ 0xa5a5a5a5u;
}

static uint32_t pattern_b(size_t i)
{
    return (uint32_t)(i * 40503u + 17u);
}

static void send_fd(int sock, int fd, uint64_t size)
{
    struct msghdr msg;
    struct iovec iov;
    char cbuf[CMSG_SPACE(sizeof(int))];
    memset(&msg, 0, sizeof msg);
    memset(cbuf, 0, sizeof cbuf);
    iov.iov_base = &size;
    iov.iov_len = sizeof size;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    EXPECT(sendmsg(sock, &msg, 0) == (ssize_t)sizeof size, "sendmsg: %s", strerror(errno));
}

static int recv_fd(int sock, uint64_t *size)
{
    struct msghdr msg;
    struct iovec iov;
    char cbuf[CMSG_SPACE(sizeof(int))];
    memset(&msg, 0, sizeof msg);
    iov.iov_base = size;
    iov.iov_len = sizeof *size;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    ssize_t r = recvmsg(sock, &msg, 0);
    EXPECT(r == (ssize_t)sizeof *size, "recvmsg returned %zd: %s", r, strerror(errno));
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    EXPECT(cm != NULL && cm->cmsg_type == SCM_RIGHTS, "no SCM_RIGHTS in message");
    int fd = -1;
    memcpy(&fd, CMSG_DATA(cm), sizeof(int));
    return fd;
}

/* Reads one byte with a timeout; returns -1 on EOF/timeout. */
static int read_byte(int sock, int timeout_ms)
{
    struct pollfd p = {sock, POLLIN, 0};
    int r = poll(&p, 1, timeout_ms);
    if (r <= 0) {
        return -1;
    }
    unsigned char c;
    if (read(sock, &c, 1) != 1) {
        return -1;
    }
    return c;
}

static void map_rw(CUdeviceptr *va, size_t size, CUmemGenericAllocationHandle h)
{
    CHECK(cuMemAddressReserve(va, size, 0, 0, 0));
    CHECK(cuMemMap(*va, size, 0, h, 0));
    CUmemAccessDesc d;
    memset(&d, 0, sizeof d);
    d.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    d.location.id = 0;
    d.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    CHECK(cuMemSetAccess(*va, size, &d, 1));
}

static int child_main(int sock)
{
    watchdog(60);
    uint64_t size = 0;
    int fd = recv_fd(sock, &size);
    EXPECT(fd >= 0 && size > 0, "child got fd %d size %llu", fd, (unsigned long long)size);

    CUdevice dev;
    init_primary(&dev);
    CUmemGenericAllocationHandle h = 0;
    CHECK(cuMemImportFromShareableHandle(&h, (void *)(uintptr_t)fd, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR));
    close(fd); /* the imported handle does not depend on our fd */
    CUdeviceptr va = 0;
    map_rw(&va, (size_t)size, h);

    size_t n = (size_t)size / 4;
    uint32_t *buf = (uint32_t *)malloc((size_t)size);
    CHECK(cuMemcpyDtoH(buf, va, (size_t)size));
    for (size_t i = 0; i < n; i++) {
        EXPECT(buf[i] == pattern_a(i), "child: word %zu = %#x, want %#x (parent's pattern)", i, buf[i],
               pattern_a(i));
    }
    printf("ok: child read the parent's pattern\n");
    for (size_t i = 0; i < n; i++) {
        buf[i] = pattern_b(i);
    }
    CHECK(cuMemcpyHtoD(va, buf, (size_t)size));
    CHECK(cuCtxSynchronize());
    CHECK(cuMemUnmap(va, (size_t)size));
    CHECK(cuMemRelease(h));
    CHECK(cuMemAddressFree(va, (size_t)size));
    printf("ok: child wrote its pattern\n");
    fflush(stdout);
    unsigned char done = 'D';
    EXPECT(write(sock, &done, 1) == 1, "child write reply");
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "child") == 0) {
        return child_main(atoi(argv[2]));
    }
    watchdog(90);

    CUdevice dev;
    init_primary(&dev);
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = 0;
    prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
    size_t g = 0;
    CHECK(cuMemGetAllocationGranularity(&g, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
    const size_t size = 2 * g;
    const size_t n = size / 4;

    CUmemGenericAllocationHandle h = 0;
    CHECK(cuMemCreate(&h, size, &prop, 0));
    CUdeviceptr va = 0;
    map_rw(&va, size, h);
    uint32_t *buf = (uint32_t *)malloc(size);
    for (size_t i = 0; i < n; i++) {
        buf[i] = pattern_a(i);
    }
    CHECK(cuMemcpyHtoD(va, buf, size));
    CHECK(cuCtxSynchronize());

    int fd = -1;
    CHECK(cuMemExportToShareableHandle(&fd, h, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0));
    EXPECT(fd >= 0, "exported fd %d", fd);
    /* The child must receive the fd over the socket, not by inheritance. */
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    OK("parent exported %zu bytes as fd %d", size, fd);

    int sv[2];
    EXPECT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair: %s", strerror(errno));
    fcntl(sv[0], F_SETFD, FD_CLOEXEC);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    EXPECT(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* No CUDA calls between fork and exec. */
        char fdstr[16];
        snprintf(fdstr, sizeof fdstr, "%d", sv[1]);
        execl("/proc/self/exe", argv[0], "child", fdstr, (char *)NULL);
        _exit(127);
    }
    close(sv[1]);
    send_fd(sv[0], fd, (uint64_t)size);
    close(fd);

    int reply = read_byte(sv[0], 60000);
    int status = 0;
    pid_t w = 0;
    for (int i = 0; i < 300 && w == 0; i++) {
        w = waitpid(pid, &status, WNOHANG);
        if (w == 0) {
            sleep_ms(100);
        }
    }
    if (w == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        FAIL_AT("child did not exit within 30 s after replying (reply %d)", reply);
    }
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed: status %#x (reply %d)", status,
           reply);
    EXPECT(reply == 'D', "child reply %d", reply);
    OK("child imported, verified and rewrote the memory");

    memset(buf, 0, size);
    CHECK(cuMemcpyDtoH(buf, va, size));
    for (size_t i = 0; i < n; i++) {
        EXPECT(buf[i] == pattern_b(i), "parent: word %zu = %#x, want the child's %#x", i, buf[i],
               pattern_b(i));
    }
    OK("parent sees the child's writes");

    CHECK(cuMemUnmap(va, size));
    CHECK(cuMemRelease(h));
    CHECK(cuMemAddressFree(va, size));
    free(buf);
    close(sv[0]);
    return 0;
}
