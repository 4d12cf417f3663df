/* imagingdb._qc: a frame's QC figures in one pass over its pixels (see imagingdb/qc.py).
 *
 * numpy computes each figure in its own pass over the frame (minimum, maximum, sum, the
 * Laplacian's five terms, its squares, the pooled maximum): about ten passes, which cost
 * QC 10-30% of an upload's throughput (docs/performance.md, "QC at ingest"). This kernel
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
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX2_PATH 1
#include <immintrin.h>
#endif

/* Where the compiler can, the row functions below in two copies, for AVX2 and for any
 * x86-64, the one for the machine chosen when the module loads (written for the
 * vectoriser: at -O3 the AVX2 copy of the 32-bit Laplacian is ~3x the other). They need
 * the C library's ifunc (glibc; musl has none). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)
#define CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CLONES
#endif

/* Every |Laplacian| is at most 8 * 2**15 = 2**18, a square at most 2**36: a row of fewer
 * than 2**27 pixels sums its squares in 64 bits (frame_stats refuses wider rows). */
#define MAX_WIDTH (((Py_ssize_t)1) << 27)

typedef struct {
    int64_t lo, hi, sum;
} row_stats_t;

/* What differs between the four pixel types, one row at a time. */
typedef struct {
    void (*stats)(const void *row, Py_ssize_t w, row_stats_t *out);
    uint64_t (*saturated)(const void *row, Py_ssize_t w, int64_t level);
    void (*pool_rows)(void *block, const void *row, Py_ssize_t w);
    void (*pool_columns)(const void *block, Py_ssize_t w, Py_ssize_t factor, void *out);
    void (*laplacian)(const void *north, const void *centre, const void *south, Py_ssize_t w,
                      int64_t *lap, uint64_t *squares);
    int words; /* 16-bit: the narrow Laplacian below applies */
} pixel_ops_t;

#define PIXEL_OPS(NAME, T, WORDS)                                                            \
CLONES static void NAME##_stats(const void *pixels, Py_ssize_t w, row_stats_t *out) {              \
    const T *row = pixels;                                                                   \
    T lo = row[0], hi = row[0];                                                              \
    int64_t sum = 0;                                                                         \
    for (Py_ssize_t x = 0; x < w; x++) {                                                     \
        lo = row[x] < lo ? row[x] : lo;                                                      \
        hi = row[x] > hi ? row[x] : hi;                                                      \
        sum += row[x];                                                                       \
    }                                                                                        \
    out->lo = lo; out->hi = hi; out->sum = sum;                                              \
}                                                                                            \
CLONES static uint64_t NAME##_saturated(const void *pixels, Py_ssize_t w, int64_t level) {         \
    const T *row = pixels;                                                                   \
    uint64_t count = 0;                                                                      \
    for (Py_ssize_t x = 0; x < w; x++) count += row[x] >= level;                             \
    return count;                                                                            \
}                                                                                            \
CLONES static void NAME##_pool_rows(void *into, const void *pixels, Py_ssize_t w) {                \
    T *restrict block = into;                                                                \
    const T *restrict row = pixels;                                                                   \
    for (Py_ssize_t x = 0; x < w; x++) block[x] = row[x] > block[x] ? row[x] : block[x];     \
}                                                                                            \
CLONES static void NAME##_pool_columns(const void *from, Py_ssize_t w, Py_ssize_t factor,          \
                                void *into) {                                                \
    const T *block = from;                                                                   \
    T *out = into;                                                                           \
    for (Py_ssize_t start = 0, b = 0; start < w; start += factor, b++) {                     \
        const Py_ssize_t end = start + factor < w ? start + factor : w;                      \
        T most = block[start];                                                               \
        for (Py_ssize_t x = start + 1; x < end; x++) most = block[x] > most ? block[x] : most; \
        out[b] = most;                                                                       \
    }                                                                                        \
}                                                                                            \
CLONES static void NAME##_laplacian(const void *n, const void *c, const void *s, Py_ssize_t w,     \
                             int64_t *lap, uint64_t *squares) {                              \
    const T *north = n, *centre = c, *south = s;                                             \
    int64_t sum = 0;                                                                         \
    uint64_t sum_squares = 0;                                                                \
    for (Py_ssize_t x = 1; x < w - 1; x++) {                                                 \
        const int32_t l = 4 * (int32_t)centre[x] - (int32_t)north[x] - (int32_t)south[x]     \
                          - (int32_t)centre[x - 1] - (int32_t)centre[x + 1];                 \
        sum += l;                                                                            \
        sum_squares += (uint64_t)((int64_t)l * l);                                           \
    }                                                                                        \
    *lap = sum; *squares = sum_squares;                                                      \
}                                                                                            \
static const pixel_ops_t NAME##_ops = {NAME##_stats, NAME##_saturated, NAME##_pool_rows,     \
                                       NAME##_pool_columns, NAME##_laplacian, WORDS};

PIXEL_OPS(uint8, uint8_t, 0)
PIXEL_OPS(int8, int8_t, 0)
PIXEL_OPS(uint16, uint16_t, 1)
PIXEL_OPS(int16, int16_t, 1)

#ifdef HAVE_AVX2_PATH
/* The Laplacian of a row of 16-bit words whose three rows span less than 2**13, so that
 * |value| < 2**15: computed modulo 2**16 in 16-bit lanes (signed and unsigned words wrap
 * alike) and read as int16, exact; _mm256_madd_epi16 sums pairs of squares (< 2**31) and
 * pairs of values, widened before they could overflow. 16 pixels per step. */
#define NARROW_MAX_WIDTH (((Py_ssize_t)1) << 19) /* the int32 lanes of pair sums hold it */

__attribute__((target("avx2")))
static void laplacian_narrow_avx2(const uint16_t *north, const uint16_t *centre,
                                  const uint16_t *south, Py_ssize_t w, int64_t *lap,
                                  uint64_t *squares) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i sums = _mm256_setzero_si256(), sum_squares = _mm256_setzero_si256();
    Py_ssize_t x = 1;
    for (; x + 16 <= w - 1; x += 16) {
        __m256i l = _mm256_slli_epi16(_mm256_loadu_si256((const __m256i *)(centre + x)), 2);
        l = _mm256_sub_epi16(l, _mm256_loadu_si256((const __m256i *)(north + x)));
        l = _mm256_sub_epi16(l, _mm256_loadu_si256((const __m256i *)(south + x)));
        l = _mm256_sub_epi16(l, _mm256_loadu_si256((const __m256i *)(centre + x - 1)));
        l = _mm256_sub_epi16(l, _mm256_loadu_si256((const __m256i *)(centre + x + 1)));
        sums = _mm256_add_epi32(sums, _mm256_madd_epi16(l, ones));
        const __m256i pairs = _mm256_madd_epi16(l, l); /* non-negative, < 2**31 */
        sum_squares = _mm256_add_epi64(sum_squares, _mm256_cvtepu32_epi64(
            _mm256_castsi256_si128(pairs)));
        sum_squares = _mm256_add_epi64(sum_squares, _mm256_cvtepu32_epi64(
            _mm256_extracti128_si256(pairs, 1)));
    }
    int32_t lanes[8];
    uint64_t wide[4];
    _mm256_storeu_si256((__m256i *)lanes, sums);
    _mm256_storeu_si256((__m256i *)wide, sum_squares);
    int64_t sum = 0;
    uint64_t total = wide[0] + wide[1] + wide[2] + wide[3];
    for (int k = 0; k < 8; k++) sum += lanes[k];
    for (; x < w - 1; x++) {
        const int16_t l = (int16_t)(uint16_t)(4u * centre[x] - north[x] - south[x]
                                              - centre[x - 1] - centre[x + 1]);
        sum += l;
        total += (uint64_t)((int32_t)l * l);
    }
    *lap = sum; *squares = total;
}

static int have_avx2;
#endif

typedef struct {
    const pixel_ops_t *ops;
    const char *pixels;
    Py_ssize_t height, width, stride, itemsize; /* stride: bytes from one row to the next */
    int64_t level;                              /* -1: none */
    Py_ssize_t factor;
    char *small, *block; /* NULL: no pooling; block: a row of the running maximum */
} frame_t;

typedef struct {
    int64_t min, max, sum, lap_sum;
    uint64_t saturated, squares_lo, squares_hi; /* the squares' sum: 128 bits */
} stats_t;

/* Row y - 1's Laplacian (rows y - 2, y - 1, y), spans: the three rows' (min, max). */
static void laplacian_row(const frame_t *f, Py_ssize_t y, const row_stats_t spans[3],
                          stats_t *s) {
    const char *south = f->pixels + y * f->stride;
    const char *centre = south - f->stride, *north = centre - f->stride;
    int64_t lap;
    uint64_t squares;
#ifdef HAVE_AVX2_PATH
    int64_t lo = spans[0].lo, hi = spans[0].hi;
    for (int k = 1; k < 3; k++) {
        lo = spans[k].lo < lo ? spans[k].lo : lo;
        hi = spans[k].hi > hi ? spans[k].hi : hi;
    }
    /* each of the four differences is at most the span: in all below 2**15 */
    if (have_avx2 && f->ops->words && 4 * (hi - lo) < 32768 && f->width < NARROW_MAX_WIDTH) {
        laplacian_narrow_avx2((const uint16_t *)north, (const uint16_t *)centre,
                              (const uint16_t *)south, f->width, &lap, &squares);
    } else
#endif
    f->ops->laplacian(north, centre, south, f->width, &lap, &squares);
    (void)spans;
    s->lap_sum += lap;
    s->squares_lo += squares;
    s->squares_hi += s->squares_lo < squares; /* the carry */
}

/* Row y into the running maximum of its block of rows; the block's last row writes it. */
static void pool_row(const frame_t *f, Py_ssize_t y, const char *row) {
    const size_t bytes = (size_t)f->width * (size_t)f->itemsize;
    if (y % f->factor == 0) memcpy(f->block, row, bytes);
    else f->ops->pool_rows(f->block, row, f->width);
    if (y % f->factor == f->factor - 1 || y == f->height - 1) {
        const Py_ssize_t small_width = (f->width - 1) / f->factor + 1;
        char *out = f->small + (y / f->factor) * small_width * f->itemsize;
        f->ops->pool_columns(f->block, f->width, f->factor, out);
    }
}

static void frame_pass(const frame_t *f, stats_t *s) {
    row_stats_t spans[3];
    memset(s, 0, sizeof *s);
    for (Py_ssize_t y = 0; y < f->height; y++) {
        const char *row = f->pixels + y * f->stride;
        row_stats_t *here = &spans[y % 3];
        f->ops->stats(row, f->width, here);
        s->min = y == 0 || here->lo < s->min ? here->lo : s->min;
        s->max = y == 0 || here->hi > s->max ? here->hi : s->max;
        s->sum += here->sum;
        if (f->level >= 0 && here->hi >= f->level)
            s->saturated += f->ops->saturated(row, f->width, f->level);
        if (f->small != NULL) pool_row(f, y, row);
        if (y >= 2 && f->width >= 3) laplacian_row(f, y, spans, s);
    }
}

static const pixel_ops_t *ops_for(const char *format) {
    if (format == NULL) return &uint8_ops; /* "B" is the buffer protocol's default */
    if (format[0] == '@' || format[0] == '=') format++;
#if PY_LITTLE_ENDIAN
    else if (format[0] == '<') format++;
#else
    else if (format[0] == '>' || format[0] == '!') format++;
#endif
    if (format[0] == '\0' || format[1] != '\0') return NULL;
    switch (format[0]) {
        case 'B': return &uint8_ops;
        case 'b': return &int8_ops;
        case 'H': return &uint16_ops;
        case 'h': return &int16_ops;
        default: return NULL;
    }
}

static PyObject *as_result(const frame_t *f, const stats_t *s) {
    if (f->height < 3 || f->width < 3)
        return Py_BuildValue("LLLKOO", (long long)s->min, (long long)s->max, (long long)s->sum,
                             (unsigned long long)s->saturated, Py_None, Py_None);
    PyObject *hi = PyLong_FromUnsignedLongLong(s->squares_hi);
    PyObject *shift = PyLong_FromLong(64);
    PyObject *lo = PyLong_FromUnsignedLongLong(s->squares_lo);
    PyObject *shifted = NULL, *squares = NULL;
    if (hi != NULL && shift != NULL && lo != NULL) shifted = PyNumber_Lshift(hi, shift);
    if (shifted != NULL) squares = PyNumber_Or(shifted, lo);
    Py_XDECREF(hi); Py_XDECREF(shift); Py_XDECREF(lo); Py_XDECREF(shifted);
    if (squares == NULL) return NULL;
    return Py_BuildValue("LLLKLN", (long long)s->min, (long long)s->max, (long long)s->sum,
                         (unsigned long long)s->saturated, (long long)s->lap_sum, squares);
}

/* small, checked against the frame: ceil(H/factor) x ceil(W/factor) of the same type. */
static int take_small(const frame_t *f, PyObject *small_obj, Py_buffer *small) {
    if (PyObject_GetBuffer(small_obj, small, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE | PyBUF_FORMAT) < 0)
        return -1;
    const Py_ssize_t rows = (f->height - 1) / f->factor + 1; /* ceil, without overflow */
    const Py_ssize_t cols = (f->width - 1) / f->factor + 1;
    if (ops_for(small->format) != f->ops || small->len != rows * cols * f->itemsize) {
        PyErr_SetString(PyExc_ValueError,
                        "small must hold ceil(H/factor) x ceil(W/factor) pixels of the frame's type");
        PyBuffer_Release(small);
        return -1;
    }
    return 0;
}

static PyObject *frame_stats(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *pixels_obj, *small_obj, *result = NULL;
    long long level;
    Py_ssize_t factor;
    if (!PyArg_ParseTuple(args, "OLnO", &pixels_obj, &level, &factor, &small_obj)) return NULL;
    if (factor < 1) {
        PyErr_SetString(PyExc_ValueError, "factor must be at least 1");
        return NULL;
    }
    if (level < -1) {
        PyErr_SetString(PyExc_ValueError, "level must be -1 (none) or at least 0");
        return NULL;
    }
    Py_buffer pixels, small;
    if (PyObject_GetBuffer(pixels_obj, &pixels, PyBUF_STRIDES | PyBUF_FORMAT) < 0) return NULL;
    frame_t f = {ops_for(pixels.format), pixels.buf, 0, 0, 0, pixels.itemsize, level, factor,
                 NULL, NULL};
    if (f.ops == NULL || pixels.ndim != 2 || pixels.strides[1] != pixels.itemsize
            || pixels.shape[0] < 1 || pixels.shape[1] < 1 || pixels.shape[1] >= MAX_WIDTH
            || ((uintptr_t)pixels.buf | (uintptr_t)pixels.strides[0]) % (uintptr_t)pixels.itemsize) {
        PyErr_SetString(PyExc_ValueError, "pixels must be a non-empty 2-D buffer of 8- or "
                                          "16-bit integers with contiguous, aligned rows");
        PyBuffer_Release(&pixels);
        return NULL;
    }
    f.height = pixels.shape[0];
    f.width = pixels.shape[1];
    f.stride = pixels.strides[0];
    int pooling = small_obj != Py_None;
    if (pooling && take_small(&f, small_obj, &small) < 0) {
        PyBuffer_Release(&pixels);
        return NULL;
    }
    if (pooling) {
        f.small = small.buf;
        f.block = PyMem_RawMalloc((size_t)f.width * (size_t)f.itemsize);
    }
    if (pooling && f.block == NULL) {
        PyErr_NoMemory();
    } else {
        stats_t s;
        Py_BEGIN_ALLOW_THREADS
        frame_pass(&f, &s);
        Py_END_ALLOW_THREADS
        result = as_result(&f, &s);
    }
    if (pooling) {
        PyMem_RawFree(f.block);
        PyBuffer_Release(&small);
    }
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
#ifdef HAVE_AVX2_PATH
    __builtin_cpu_init();
    have_avx2 = __builtin_cpu_supports("avx2");
#endif
    return PyModule_Create(&module);
}
