/* imagingdb._qc: a frame's QC figures in one pass over its pixels (see imagingdb/qc.py).
 *
 * numpy computes each figure in its own pass over the frame (minimum, maximum, sum, the
 * Laplacian's five terms, its squares, the pooled maximum): about ten passes, which cost
 * QC 20-30% of an upload's throughput (docs/performance.md, "QC at ingest"). This kernel
 * reads each row once, while it is in the cache, and computes every figure exactly in
 * integers; imagingdb/qc.py turns them into the qc_* values and falls back to numpy when
 * the module is not built (it is optional: a machine without a C compiler installs
 * without it) or the frame is not one it takes.
 *
 * frame_stats(pixels, level, factor, small) -> (min, max, sum, saturated, lap_sum, lap_squares)
 *   pixels: a 2-D buffer of 8- or 16-bit integers (formats B b H h, native order) whose
 *     rows are contiguous (any row stride);
 *   level: pixels >= level are counted as saturated; -1: none counted;
 *   factor, small: small (C-contiguous, ceil(H/factor) x ceil(W/factor), the pixels'
 *     format) receives the maximum of each factor x factor block; None: no pooling;
 *   lap_sum, lap_squares: the sum and the sum of squares of the 4-neighbour Laplacian
 *     4 p[y,x] - p[y-1,x] - p[y+1,x] - p[y,x-1] - p[y,x+1] over the interior; None below
 *     3 x 3 pixels.
 * The GIL is released while the pixels are read.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Where the compiler can, one copy for AVX2 and one for any x86-64, chosen when the
 * module loads: the loops below are written for the vectoriser. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CLONES
#endif

typedef struct {
    int64_t min, max, sum, lap_sum;
    uint64_t saturated, squares_lo, squares_hi; /* the squares' sum: 128 bits */
    int lap;                                    /* lap_sum and squares computed */
} stats_t;

typedef struct {
    const char *pixels;
    Py_ssize_t height, width, stride; /* stride: bytes from one row to the next */
    int64_t level;
    Py_ssize_t factor;
    char *small;        /* NULL: no pooling */
    char *block;        /* width elements: the running maximum of a block of rows */
} frame_t;

/* Every |Laplacian| is at most 8 * 2**15 = 2**18, a square at most 2**36: a row of fewer
 * than 2**27 pixels sums its squares in 64 bits (frame_stats refuses wider rows). */
#define MAX_WIDTH (((Py_ssize_t)1) << 27)

#define KERNEL(NAME, T)                                                                      \
CLONES static void NAME(const frame_t *f, stats_t *s) {                                     \
    const Py_ssize_t h = f->height, w = f->width, factor = f->factor;                        \
    const Py_ssize_t small_width = (w + factor - 1) / factor;                                \
    T *block = (T *)f->block, *small = (T *)f->small;                                        \
    T lo = *(const T *)f->pixels, hi = lo;                                                   \
    int64_t sum = 0, lap_sum = 0;                                                            \
    uint64_t saturated = 0, squares_lo = 0, squares_hi = 0;                                  \
    for (Py_ssize_t y = 0; y < h; y++) {                                                     \
        const T *row = (const T *)(f->pixels + y * f->stride);                               \
        T row_lo = row[0], row_hi = row[0];                                                  \
        int64_t row_sum = 0;                                                                 \
        for (Py_ssize_t x = 0; x < w; x++) {                                                 \
            const T v = row[x];                                                              \
            row_lo = v < row_lo ? v : row_lo;                                                \
            row_hi = v > row_hi ? v : row_hi;                                                \
            row_sum += v;                                                                    \
        }                                                                                    \
        lo = row_lo < lo ? row_lo : lo;                                                      \
        hi = row_hi > hi ? row_hi : hi;                                                      \
        sum += row_sum;                                                                      \
        if (f->level >= 0 && (int64_t)row_hi >= f->level) {                                  \
            uint64_t count = 0;                                                              \
            for (Py_ssize_t x = 0; x < w; x++) count += (int64_t)row[x] >= f->level;         \
            saturated += count;                                                              \
        }                                                                                    \
        if (small != NULL) {                                                                 \
            if (y % factor == 0) {                                                           \
                memcpy(block, row, (size_t)w * sizeof(T));                                   \
            } else {                                                                         \
                for (Py_ssize_t x = 0; x < w; x++) block[x] = row[x] > block[x] ? row[x] : block[x]; \
            }                                                                                \
            if (y % factor == factor - 1 || y == h - 1) {                                    \
                T *out = small + (y / factor) * small_width;                                 \
                for (Py_ssize_t b = 0; b < small_width; b++) {                               \
                    const Py_ssize_t end = (b + 1) * factor < w ? (b + 1) * factor : w;      \
                    T most = block[b * factor];                                              \
                    for (Py_ssize_t x = b * factor + 1; x < end; x++)                        \
                        most = block[x] > most ? block[x] : most;                            \
                    out[b] = most;                                                           \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
        if (y >= 1 && y < h - 1 && w >= 3) {                                                 \
            const T *north = (const T *)((const char *)row - f->stride);                     \
            const T *south = (const T *)((const char *)row + f->stride);                     \
            int64_t row_lap = 0;                                                             \
            uint64_t row_squares = 0;                                                        \
            for (Py_ssize_t x = 1; x < w - 1; x++) {                                         \
                const int32_t l = 4 * (int32_t)row[x] - (int32_t)north[x] - (int32_t)south[x] \
                                  - (int32_t)row[x - 1] - (int32_t)row[x + 1];               \
                row_lap += l;                                                                \
                row_squares += (uint64_t)((int64_t)l * l);                                   \
            }                                                                                \
            lap_sum += row_lap;                                                              \
            squares_lo += row_squares;                                                       \
            squares_hi += squares_lo < row_squares; /* the carry */                          \
        }                                                                                    \
    }                                                                                        \
    s->min = lo; s->max = hi; s->sum = sum; s->saturated = saturated;                        \
    s->lap_sum = lap_sum; s->squares_lo = squares_lo; s->squares_hi = squares_hi;            \
    s->lap = h >= 3 && w >= 3;                                                               \
}

KERNEL(stats_uint8, uint8_t)
KERNEL(stats_int8, int8_t)
KERNEL(stats_uint16, uint16_t)
KERNEL(stats_int16, int16_t)

typedef void (*kernel_t)(const frame_t *, stats_t *);

static kernel_t kernel_for(const char *format) {
    if (format == NULL) return stats_uint8; /* "B" is the default format */
    if (format[0] == '@' || format[0] == '=' ) format++;
#if PY_LITTLE_ENDIAN
    else if (format[0] == '<') format++;
#else
    else if (format[0] == '>' || format[0] == '!') format++;
#endif
    if (format[0] == '\0' || format[1] != '\0') return NULL;
    switch (format[0]) {
        case 'B': return stats_uint8;
        case 'b': return stats_int8;
        case 'H': return stats_uint16;
        case 'h': return stats_int16;
        default: return NULL;
    }
}

static PyObject *squares_as_int(const stats_t *s) {
    PyObject *hi = PyLong_FromUnsignedLongLong(s->squares_hi);
    PyObject *shift = PyLong_FromLong(64);
    PyObject *lo = PyLong_FromUnsignedLongLong(s->squares_lo);
    PyObject *shifted = NULL, *total = NULL;
    if (hi != NULL && shift != NULL && lo != NULL) shifted = PyNumber_Lshift(hi, shift);
    if (shifted != NULL) total = PyNumber_Or(shifted, lo);
    Py_XDECREF(hi); Py_XDECREF(shift); Py_XDECREF(lo); Py_XDECREF(shifted);
    return total;
}

static PyObject *frame_stats(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *pixels_obj, *small_obj;
    long long level;
    Py_ssize_t factor;
    if (!PyArg_ParseTuple(args, "OLnO", &pixels_obj, &level, &factor, &small_obj)) return NULL;
    if (factor < 1) {
        PyErr_SetString(PyExc_ValueError, "factor must be at least 1");
        return NULL;
    }
    Py_buffer pixels, small;
    if (PyObject_GetBuffer(pixels_obj, &pixels, PyBUF_STRIDES | PyBUF_FORMAT) < 0) return NULL;
    int have_small = 0;
    PyObject *result = NULL;
    char *block = NULL;
    kernel_t kernel = kernel_for(pixels.format);
    if (kernel == NULL || pixels.ndim != 2 || pixels.strides[1] != pixels.itemsize
            || pixels.shape[0] < 1 || pixels.shape[1] < 1 || pixels.shape[1] >= MAX_WIDTH) {
        PyErr_SetString(PyExc_ValueError,
                        "pixels must be a non-empty 2-D buffer of 8- or 16-bit integers "
                        "with contiguous rows");
        goto done;
    }
    frame_t frame = {pixels.buf, pixels.shape[0], pixels.shape[1], pixels.strides[0],
                     (int64_t)level, factor, NULL, NULL};
    if (small_obj != Py_None) {
        if (PyObject_GetBuffer(small_obj, &small, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE | PyBUF_FORMAT) < 0)
            goto done;
        have_small = 1;
        Py_ssize_t rows = (frame.height + factor - 1) / factor;
        Py_ssize_t cols = (frame.width + factor - 1) / factor;
        if (kernel_for(small.format) != kernel || small.len != rows * cols * pixels.itemsize) {
            PyErr_SetString(PyExc_ValueError,
                             "small must hold ceil(H/factor) x ceil(W/factor) pixels of the "
                             "frame's type");
            goto done;
        }
        block = PyMem_RawMalloc((size_t)frame.width * (size_t)pixels.itemsize);
        if (block == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        frame.small = small.buf;
        frame.block = block;
    }
    stats_t s;
    Py_BEGIN_ALLOW_THREADS
    kernel(&frame, &s);
    Py_END_ALLOW_THREADS
    if (s.lap) {
        PyObject *squares = squares_as_int(&s);
        if (squares != NULL)
            result = Py_BuildValue("LLLKLN", (long long)s.min, (long long)s.max,
                                   (long long)s.sum, (unsigned long long)s.saturated,
                                   (long long)s.lap_sum, squares);
    } else {
        result = Py_BuildValue("LLLKOO", (long long)s.min, (long long)s.max, (long long)s.sum,
                               (unsigned long long)s.saturated, Py_None, Py_None);
    }
done:
    PyMem_RawFree(block);
    if (have_small) PyBuffer_Release(&small);
    PyBuffer_Release(&pixels);
    return result;
}

static PyMethodDef methods[] = {
    {"frame_stats", frame_stats, METH_VARARGS,
     "frame_stats(pixels, level, factor, small) -> (min, max, sum, saturated, lap_sum, "
     "lap_squares): a frame's QC figures in one pass (see imagingdb/_qc.c)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "imagingdb._qc",
    "A frame's QC figures in one pass over its pixels (imagingdb.qc uses it when built).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__qc(void) {
    return PyModule_Create(&module);
}
