/* Small MLP inference through the CUDA driver API, unmodified CUDA C.
 *
 * Weights are uploaded once; then each batch runs x·W1 (sgemm_tiled), +b1 and ReLU (bias_relu),
 * ·W2 (sgemm_tiled) and a row softmax (softmax_rows), copies the probabilities back and checks them
 * against a CPU reference. Prints one line per batch (checksum and the predicted class of the first
 * rows) and exits non-zero on any CUDA error or mismatch. The output depends only on the inputs, so
 * it is identical on every device that computes correctly (CPU device, GPU, through gpushare).
 *
 * usage: mlp KERNELS_DIR [--name NAME] [--batches N]
 */
#include <cuda.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 64
#define IN 256
#define HIDDEN 256
#define CLASSES 32

#define CHECK(call)                                                                   \
    do {                                                                              \
        CUresult r_ = (call);                                                         \
        if (r_ != CUDA_SUCCESS) {                                                     \
            const char *n_ = NULL;                                                    \
            cuGetErrorName(r_, &n_);                                                  \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call,      \
                    n_ ? n_ : "?");                                                   \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

static unsigned lcg_state = 12345u;
static float next_weight(float scale) {
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return ((float)(lcg_state >> 8) / (float)(1u << 24) - 0.5f) * scale;
}

static void cpu_sgemm(const float *a, const float *b, float *c, int m, int n, int k) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float acc = 0.f;
            for (int p = 0; p < k; p++) acc += a[i * k + p] * b[p * n + j];
            c[i * n + j] = acc;
        }
}

static CUfunction load(const char *dir, const char *name, CUmodule *mod) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.ptx", dir, name);
    CHECK(cuModuleLoad(mod, path));
    CUfunction f;
    CHECK(cuModuleGetFunction(&f, *mod, name));
    return f;
}

static void sgemm(CUfunction f, CUdeviceptr a, CUdeviceptr b, CUdeviceptr c, int m, int n, int k,
                  CUstream s) {
    void *args[] = {&a, &b, &c, &m, &n, &k};
    CHECK(cuLaunchKernel(f, (n + 15) / 16, (m + 15) / 16, 1, 16, 16, 1, 0, s, args, NULL));
}

/* Holds batch `b`'s probabilities against a CPU reference of the same forward pass (h and logits
 * are scratch) and prints its line; returns whether they match. */
static int check_batch(const char *name, int b, const float *x, const float *w1, const float *b1,
                       const float *w2, float *h, float *logits, const float *probs) {
    cpu_sgemm(x, w1, h, BATCH, HIDDEN, IN);
    for (int i = 0; i < BATCH * HIDDEN; i++) {
        float v = h[i] + b1[i % HIDDEN];
        h[i] = v > 0.f ? v : 0.f;
    }
    cpu_sgemm(h, w2, logits, BATCH, CLASSES, HIDDEN);
    double checksum = 0.0, max_err = 0.0;
    int first_classes[4];
    for (int r = 0; r < BATCH; r++) {
        float mx = -INFINITY, sum = 0.f;
        int arg = 0;
        for (int c = 0; c < CLASSES; c++) mx = fmaxf(mx, logits[r * CLASSES + c]);
        for (int c = 0; c < CLASSES; c++) sum += expf(logits[r * CLASSES + c] - mx);
        for (int c = 0; c < CLASSES; c++) {
            float ref = expf(logits[r * CLASSES + c] - mx) / sum;
            float got = probs[r * CLASSES + c];
            double err = fabs((double)ref - (double)got);
            if (err > max_err) max_err = err;
            if (got > probs[r * CLASSES + arg]) arg = c;
            checksum += got * (c + 1);
        }
        if (r < 4) first_classes[r] = arg;
    }
    int ok = max_err < 1e-4;
    printf("[%s] batch %d: classes %d %d %d %d  checksum %.3f  %s\n", name, b,
           first_classes[0], first_classes[1], first_classes[2], first_classes[3], checksum,
           ok ? "matches CPU reference" : "MISMATCH");
    return ok;
}

/* The network on the device: kernels, a stream, the weights (uploaded once) and activations. */
typedef struct {
    CUmodule m_gemm, m_bias, m_soft;
    CUfunction f_gemm, f_bias, f_soft;
    CUstream s;
    CUdeviceptr w1, b1, w2, x, h, hr, logits, probs;
} Net;

static void net_init(Net *n, const char *dir, const float *w1, const float *b1, const float *w2) {
    n->f_gemm = load(dir, "sgemm_tiled", &n->m_gemm);
    n->f_bias = load(dir, "bias_relu", &n->m_bias);
    n->f_soft = load(dir, "softmax_rows", &n->m_soft);
    CHECK(cuStreamCreate(&n->s, CU_STREAM_NON_BLOCKING));
    CHECK(cuMemAlloc(&n->w1, sizeof(float) * IN * HIDDEN));
    CHECK(cuMemAlloc(&n->b1, sizeof(float) * HIDDEN));
    CHECK(cuMemAlloc(&n->w2, sizeof(float) * HIDDEN * CLASSES));
    CHECK(cuMemcpyHtoD(n->w1, w1, sizeof(float) * IN * HIDDEN));
    CHECK(cuMemcpyHtoD(n->b1, b1, sizeof(float) * HIDDEN));
    CHECK(cuMemcpyHtoD(n->w2, w2, sizeof(float) * HIDDEN * CLASSES));
    CHECK(cuMemAlloc(&n->x, sizeof(float) * BATCH * IN));
    CHECK(cuMemAlloc(&n->h, sizeof(float) * BATCH * HIDDEN));
    CHECK(cuMemAlloc(&n->hr, sizeof(float) * BATCH * HIDDEN));
    CHECK(cuMemAlloc(&n->logits, sizeof(float) * BATCH * CLASSES));
    CHECK(cuMemAlloc(&n->probs, sizeof(float) * BATCH * CLASSES));
}

/* One batch on the network's stream: upload x, two layers, softmax, download the probabilities. */
static void net_forward(Net *n, const float *x, float *probs) {
    int rows = BATCH, cols = HIDDEN, classes = CLASSES;
    void *bias_args[] = {&n->h, &n->b1, &n->hr, &rows, &cols};
    void *soft_args[] = {&n->logits, &n->probs, &rows, &classes};
    CHECK(cuMemcpyHtoDAsync(n->x, x, sizeof(float) * BATCH * IN, n->s));
    sgemm(n->f_gemm, n->x, n->w1, n->h, BATCH, HIDDEN, IN, n->s);
    CHECK(cuLaunchKernel(n->f_bias, (HIDDEN + 15) / 16, (BATCH + 15) / 16, 1, 16, 16, 1, 0, n->s,
                         bias_args, NULL));
    sgemm(n->f_gemm, n->hr, n->w2, n->logits, BATCH, CLASSES, HIDDEN, n->s);
    CHECK(cuLaunchKernel(n->f_soft, BATCH / 4, 1, 1, 128, 1, 1, 0, n->s, soft_args, NULL));
    CHECK(cuMemcpyDtoHAsync(probs, n->probs, sizeof(float) * BATCH * CLASSES, n->s));
}

static void net_release(Net *n) {
    CUdeviceptr bufs[] = {n->w1, n->b1, n->w2, n->x, n->h, n->hr, n->logits, n->probs};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) CHECK(cuMemFree(bufs[i]));
    CHECK(cuStreamDestroy(n->s));
    CHECK(cuModuleUnload(n->m_gemm));
    CHECK(cuModuleUnload(n->m_bias));
    CHECK(cuModuleUnload(n->m_soft));
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s KERNELS_DIR [--name NAME] [--batches N] [--graph 0|1]\n",
                argv[0]);
        return 2;
    }
    const char *dir = argv[1], *name = "mlp";
    int batches = 4, use_graph = 0;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--name")) name = argv[i + 1];
        else if (!strcmp(argv[i], "--batches")) batches = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--graph")) use_graph = atoi(argv[i + 1]);
    }

    float *w1 = malloc(sizeof(float) * IN * HIDDEN), *b1 = malloc(sizeof(float) * HIDDEN);
    float *w2 = malloc(sizeof(float) * HIDDEN * CLASSES), *x = malloc(sizeof(float) * BATCH * IN);
    float *h = malloc(sizeof(float) * BATCH * HIDDEN), *logits = malloc(sizeof(float) * BATCH * CLASSES);
    float *probs = malloc(sizeof(float) * BATCH * CLASSES);
    for (int i = 0; i < IN * HIDDEN; i++) w1[i] = next_weight(0.2f);
    for (int i = 0; i < HIDDEN; i++) b1[i] = next_weight(0.1f);
    for (int i = 0; i < HIDDEN * CLASSES; i++) w2[i] = next_weight(0.3f);

    CUdevice dev;
    CUcontext ctx;
    CHECK(cuInit(0));
    CHECK(cuDeviceGet(&dev, 0));
    CHECK(cuDevicePrimaryCtxRetain(&ctx, dev));
    CHECK(cuCtxSetCurrent(ctx));
    Net net;
    net_init(&net, dir, w1, b1, w2);

    /* With --graph 1 one batch is captured into a CUDA graph and each batch replays it (the
     * copies read x and write probs at each replay: same output). */
    CUgraph graph = NULL;
    CUgraphExec exec = NULL;
    if (use_graph) {
        CHECK(cuStreamBeginCapture(net.s, CU_STREAM_CAPTURE_MODE_GLOBAL));
        net_forward(&net, x, probs);
        CHECK(cuStreamEndCapture(net.s, &graph));
        CHECK(cuGraphInstantiate(&exec, graph, 0));
    }

    int failures = 0;
    for (int b = 0; b < batches; b++) {
        for (int i = 0; i < BATCH * IN; i++) x[i] = next_weight(2.0f);
        if (use_graph) {
            CHECK(cuGraphLaunch(exec, net.s));
        } else {
            net_forward(&net, x, probs);
        }
        CHECK(cuStreamSynchronize(net.s));
        failures += !check_batch(name, b, x, w1, b1, w2, h, logits, probs);
    }

    if (use_graph) {
        CHECK(cuGraphExecDestroy(exec));
        CHECK(cuGraphDestroy(graph));
    }
    net_release(&net);
    CHECK(cuDevicePrimaryCtxRelease(dev));
    free(w1); free(b1); free(w2); free(x); free(h); free(logits); free(probs);
    return failures ? 1 : 0;
}
