/* lorac.scan._native: the dataset scan's hot loops, in C.
 *
 * score(): lorac.scan.dataset scores every image on its 8-bit grey downscale (at most 256 px
 * on the long side): the variance of its 4-neighbour Laplacian, and a perceptual hash whose
 * first step sums groups of rows. In numpy these are a dozen passes over the pixels through
 * work arrays, after a copy of the pixels out of PIL; at 256 px that costs a third as much
 * as decoding the JPEG. score() makes one pass over the pixels where PIL decoded them, with
 * the same exact integer arithmetic: the results are the numpy path's, bit for bit
 * (tests/test_dataset_batch.py compares them).
 *
 * stat_many(): a check of an unchanged folder is mostly the stat of every image and caption
 * against the cache: in a virtual machine a stat costs microseconds, and os.stat adds a
 * result object and the interpreter's loop. stat_many() stats a list of paths on a few
 * threads, outside the interpreter lock, with the values os.stat gives.
 *
 * list_dir(): the listing of a folder of 100,000 images and their captions made as many
 * os.DirEntry objects, then a path string of each, sorted by kind in the interpreter's loop.
 * list_dir() reads the folder and sorts its entries into the same lists.
 *
 * The scan uses Python and numpy where this module was not built (the extension is
 * optional: an install without a C compiler goes on without it).
 */

#if defined(__GNUC__) && !defined(__clang__)
/* the row loops are written to vectorise; GCC does that only from -O3 (clang at -O2) */
#pragma GCC optimize("O3")
#endif

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if !defined(_WIN32)
#define HAVE_STAT_MANY 1
#include <errno.h>
#include <dirent.h>
#include <pthread.h>
#include <sys/stat.h>
#endif

/* The Arrow C data interface (arrow.apache.org/docs/format/CDataInterface.html): how PIL
 * (11.2 and later) lends its image memory without a copy. */
struct ArrowSchema {
    const char *format;
    const char *name;
    const char *metadata;
    int64_t flags;
    int64_t n_children;
    struct ArrowSchema **children;
    struct ArrowSchema *dictionary;
    void (*release)(struct ArrowSchema *);
    void *private_data;
};

struct ArrowArray {
    int64_t length;
    int64_t null_count;
    int64_t offset;
    int64_t n_buffers;
    int64_t n_children;
    const void **buffers;
    struct ArrowArray **children;
    struct ArrowArray *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};

/* The n bytes of an (arrow_schema, arrow_array) capsule pair of an 8-bit single-channel
 * image, as PIL's Image.__arrow_c_array__() gives them; NULL (and an exception) otherwise. */
static const uint8_t *
arrow_bytes(PyObject *pair, Py_ssize_t n)
{
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
        PyErr_SetString(PyExc_TypeError, "pixels: a bytes-like object or an Arrow "
                        "(schema, array) capsule pair");
        return NULL;
    }
    struct ArrowSchema *schema = PyCapsule_GetPointer(PyTuple_GET_ITEM(pair, 0),
                                                      "arrow_schema");
    struct ArrowArray *array = PyCapsule_GetPointer(PyTuple_GET_ITEM(pair, 1), "arrow_array");
    if (schema == NULL || array == NULL)
        return NULL;
    if (schema->release == NULL || array->release == NULL || strcmp(schema->format, "C")
            || schema->n_children || array->n_children || array->n_buffers != 2
            || (array->null_count != 0 && array->buffers[0] != NULL) /* has nulls */
            || array->offset < 0 || array->length != n
            || array->buffers[1] == NULL) {
        PyErr_Format(PyExc_ValueError, "pixels: not an Arrow array of %zd unsigned bytes", n);
        return NULL;
    }
    return (const uint8_t *)array->buffers[1] + array->offset;
}

#define MAX_LAPLACIAN_ROW 2064 /* (2**31 - 1) // 1020**2: a row's squares sum in int32 */
#define MAX_GROUP 257          /* rows summed in uint16 at most: 257 * 255 < 2**16 */
#define MAX_BLOCK 65793        /* pixels of a block summed at most: 65793 * 255 < 2**24, exact
                                * in float32 */

/* The pass over one image: each row is widened to int16 once, into a ring of three, and
 * added to the sum of its group of f rows; a group's sum is then summed g columns at a
 * time into the output. */
typedef struct {
    Py_ssize_t w, f, g;
    int16_t *ring;  /* 3 rows */
    uint16_t *sum;  /* 1 row: the sum of the current group so far */
    float *out;     /* (h / f) rows of w / g: each f x g block's sum, exact in float32 */
} Pass;

#if defined(__GNUC__)
#define INLINE static inline __attribute__((always_inline))
#else
#define INLINE static inline
#endif

INLINE void
take_row(Pass *pass, const uint8_t *src, Py_ssize_t r)
{
    Py_ssize_t w = pass->w, f = pass->f;
    int16_t *dst = pass->ring + (r % 3) * w;
    uint16_t *sum = pass->sum;
    if (r % f == 0)
        for (Py_ssize_t x = 0; x < w; x++)
            sum[x] = (uint16_t)(dst[x] = src[x]);
    else
        for (Py_ssize_t x = 0; x < w; x++)
            sum[x] += (uint16_t)(dst[x] = src[x]);
    if (r % f == f - 1) {
        Py_ssize_t g = pass->g;
        float *out = pass->out + (r / f) * (w / g);
        if (g == 1)
            for (Py_ssize_t x = 0; x < w; x++)
                out[x] = (float)sum[x];
        /* the widths of the 256-px box (256, 192, 128): loops of fixed stride vectorise */
        else if (g == 4)
            for (Py_ssize_t x = 0; x < w / 4; x++)
                out[x] = (float)((uint32_t)sum[4 * x] + sum[4 * x + 1] + sum[4 * x + 2] +
                                 sum[4 * x + 3]);
        else if (g == 3)
            for (Py_ssize_t x = 0; x < w / 3; x++)
                out[x] = (float)((uint32_t)sum[3 * x] + sum[3 * x + 1] + sum[3 * x + 2]);
        else if (g == 2)
            for (Py_ssize_t x = 0; x < w / 2; x++)
                out[x] = (float)((uint32_t)sum[2 * x] + sum[2 * x + 1]);
        else
            for (Py_ssize_t x = 0; x < w / g; x++) {
                uint32_t block = 0;
                for (Py_ssize_t j = 0; j < g; j++)
                    block += sum[x * g + j];
                out[x] = (float)block;
            }
    }
}

/* The rows of the h x w image are summed f at a time into pass->out, and the sum and sum of
 * squares of up + down + left + right - 4 * centre over the image's interior (every pixel
 * with four neighbours): |value| <= 1020, so a row's squares sum in int32 (w <= 2,064), and
 * rows are added in int64. */
INLINE void
scan_body(Pass *pass, const uint8_t *a, Py_ssize_t h, int64_t *sum, int64_t *squares)
{
    Py_ssize_t w = pass->w;
    int64_t s1 = 0, s2 = 0;
    take_row(pass, a, 0);
    if (h > 1)
        take_row(pass, a + w, 1);
    for (Py_ssize_t y = 1; y < h - 1; y++) {
        take_row(pass, a + (y + 1) * w, y + 1);
        const int16_t *up = pass->ring + ((y - 1) % 3) * w, *row = pass->ring + (y % 3) * w,
                      *down = pass->ring + ((y + 1) % 3) * w;
        int32_t r1 = 0, r2 = 0;
        for (Py_ssize_t x = 1; x < w - 1; x++) {
            int16_t v = (int16_t)(up[x] + down[x] + row[x - 1] + row[x + 1] - 4 * row[x]);
            r1 += v;
            r2 += (int32_t)v * v;
        }
        s1 += r1;
        s2 += r2;
    }
    *sum = s1;
    *squares = s2;
}

/* The pass compiled twice: for the baseline instruction set, and where GCC or clang build
 * for x86-64, for AVX2 as well (16 int16 lanes instead of 8: a 256-px image in about 16 us
 * instead of 22), taken when the processor has it. Integer arithmetic either way: the same
 * sums. */
static void
scan_image_base(Pass *pass, const uint8_t *a, Py_ssize_t h, int64_t *sum, int64_t *squares)
{
    scan_body(pass, a, h, sum, squares);
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define HAVE_AVX2_PASS 1
__attribute__((target("avx2"))) static void
scan_image_avx2(Pass *pass, const uint8_t *a, Py_ssize_t h, int64_t *sum, int64_t *squares)
{
    scan_body(pass, a, h, sum, squares);
}
#endif

static void (*scan_image)(Pass *, const uint8_t *, Py_ssize_t, int64_t *, int64_t *) =
    scan_image_base;

static PyObject *
score(PyObject *self, PyObject *args)
{
    PyObject *source;
    Py_ssize_t h, w, f, g, index;
    Py_buffer dst, src = {0};
    if (!PyArg_ParseTuple(args, "Onnnnw*n", &source, &h, &w, &f, &g, &dst, &index))
        return NULL;
    PyObject *result = NULL;
    int16_t *work = NULL;
    const uint8_t *pixels;
    if (h < 1 || w < 1 || h > PY_SSIZE_T_MAX / w) {
        PyErr_SetString(PyExc_ValueError, "image sides must be positive");
        goto done;
    }
    if (w > MAX_LAPLACIAN_ROW) {
        PyErr_Format(PyExc_ValueError, "rows of %zd pixels: at most %d", w, MAX_LAPLACIAN_ROW);
        goto done;
    }
    if (f < 1 || f > MAX_GROUP || h % f) {
        PyErr_Format(PyExc_ValueError, "cannot sum %zd rows at a time of %zd", f, h);
        goto done;
    }
    if (g < 1 || w % g || f * g > MAX_BLOCK) {
        PyErr_Format(PyExc_ValueError, "cannot sum %zd columns at a time of %zd (by %zd rows)",
                     g, w, f);
        goto done;
    }
    Py_ssize_t slot = (h / f) * (w / g);
    if (index < 0 || dst.len / (Py_ssize_t)sizeof(float) / slot <= index) {
        PyErr_Format(PyExc_ValueError, "output holds no image %zd of %zd floats", index, slot);
        goto done;
    }
    if (PyObject_CheckBuffer(source)) {
        if (PyObject_GetBuffer(source, &src, PyBUF_SIMPLE) < 0)
            goto done;
        if (src.len < h * w) {
            PyErr_Format(PyExc_ValueError, "pixels: %zd bytes for an image of %zd x %zd",
                         src.len, h, w);
            goto done;
        }
        pixels = src.buf;
    }
    else if ((pixels = arrow_bytes(source, h * w)) == NULL)
        goto done;
    work = PyMem_Malloc((sizeof(int16_t) * 3 + sizeof(uint16_t)) * w);
    if (work == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t s1, s2;
    Pass pass = {w, f, g, work, (uint16_t *)(work + 3 * w), (float *)dst.buf + index * slot};
    Py_BEGIN_ALLOW_THREADS
    scan_image(&pass, pixels, h, &s1, &s2);
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("(LL)", (long long)s1, (long long)s2);
done:
    PyMem_Free(work);
    if (src.obj != NULL)
        PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    return result;
}

#ifdef HAVE_STAT_MANY
/* stat_many(): each path's (size, mtime_ns, inode, mode), or the errno its stat gave */
typedef struct {
    const char **paths;
    int64_t (*out)[4];
    Py_ssize_t start, stop;
} StatJob;

static void *
stat_range(void *arg)
{
    StatJob *job = arg;
    struct stat st;
    for (Py_ssize_t i = job->start; i < job->stop; i++) {
        int64_t *o = job->out[i];
        if (job->paths[i] == NULL) { /* a NUL in the name: os.stat refuses it too */
            o[0] = -1;
            o[1] = EINVAL;
        }
        else if (stat(job->paths[i], &st) == 0) {
#if defined(__APPLE__)
            struct timespec mtime = st.st_mtimespec;
#else
            struct timespec mtime = st.st_mtim;
#endif
            o[0] = (int64_t)st.st_size;
            o[1] = (int64_t)mtime.tv_sec * 1000000000 + mtime.tv_nsec;
            o[2] = (int64_t)st.st_ino;
            o[3] = (int64_t)st.st_mode;
        }
        else {
            o[0] = -1;
            o[1] = errno;
        }
    }
    return NULL;
}

#define MAX_STAT_THREADS 8
#define STATS_PER_THREAD 2048 /* fewer than this per thread: not worth starting one */

static PyObject *
stat_many(PyObject *self, PyObject *args)
{
    PyObject *list;
    int threads;
    if (!PyArg_ParseTuple(args, "O!i", &PyList_Type, &list, &threads))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(list);
    PyObject *encoded = PyList_New(n); /* keeps the encoded names alive */
    const char **paths = PyMem_Calloc(n ? n : 1, sizeof(char *));
    int64_t (*out)[4] = PyMem_Calloc(n ? n : 1, sizeof(*out));
    PyObject *result = NULL;
    if (encoded == NULL || paths == NULL || out == NULL) {
        if (encoded != NULL)
            PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyList_GET_ITEM(list, i), *bytes;
        if (PyUnicode_Check(name))
            bytes = PyUnicode_EncodeFSDefault(name); /* as os.fsencode */
        else if (PyBytes_Check(name))
            bytes = Py_NewRef(name);
        else {
            PyErr_Format(PyExc_TypeError, "path %zd is not str or bytes", i);
            goto done;
        }
        if (bytes == NULL)
            goto done;
        PyList_SET_ITEM(encoded, i, bytes);
        const char *text = PyBytes_AS_STRING(bytes);
        paths[i] = (Py_ssize_t)strlen(text) == PyBytes_GET_SIZE(bytes) ? text : NULL;
    }
    if (threads > MAX_STAT_THREADS)
        threads = MAX_STAT_THREADS;
    if (threads > n / STATS_PER_THREAD)
        threads = (int)(n / STATS_PER_THREAD);
    if (threads < 1)
        threads = 1;
    StatJob jobs[MAX_STAT_THREADS];
    pthread_t ids[MAX_STAT_THREADS];
    int started[MAX_STAT_THREADS] = {0};
    Py_BEGIN_ALLOW_THREADS
    for (int t = 0; t < threads; t++) {
        jobs[t] = (StatJob){paths, out, n * t / threads, n * (t + 1) / threads};
        if (t > 0)
            started[t] = pthread_create(&ids[t], NULL, stat_range, &jobs[t]) == 0;
    }
    stat_range(&jobs[0]);
    for (int t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(ids[t], NULL);
        else /* no thread to be had: this one does that share too */
            stat_range(&jobs[t]);
    }
    Py_END_ALLOW_THREADS
    result = PyList_New(n);
    for (Py_ssize_t i = 0; result != NULL && i < n; i++) {
        int64_t *o = out[i];
        PyObject *item = o[0] < 0 ? PyLong_FromLongLong(o[1]) : Py_BuildValue(
            "(LLLL)", (long long)o[0], (long long)o[1], (long long)o[2], (long long)o[3]);
        if (item == NULL)
            Py_CLEAR(result);
        else
            PyList_SET_ITEM(result, i, item);
    }
done:
    Py_XDECREF(encoded);
    PyMem_Free(paths);
    PyMem_Free(out);
    return result;
}

/* list_dir(): the entries of a folder as lorac.scan.dataset.list_folder sorts them. */
static int
append_path(PyObject *list, const char *head, size_t head_len, const char *name, size_t len,
            char **buf, size_t *cap)
{
    if (head_len + len > *cap) {
        char *grown = PyMem_Realloc(*buf, head_len + len);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        *buf = grown;
        *cap = head_len + len;
    }
    memcpy(*buf, head, head_len);
    memcpy(*buf + head_len, name, len);
    /* as os.fsdecode(os.fsencode(prefix) + name) */
    PyObject *text = PyUnicode_DecodeFSDefaultAndSize(*buf, (Py_ssize_t)(head_len + len));
    int failed = text == NULL || PyList_Append(list, text) < 0;
    Py_XDECREF(text);
    return failed ? -1 : 0;
}

/* 1 if the extension (from the last '.', after the first character) is in images, 2 if its
 * lower case is in others, 0 if neither, -1 on an error */
static int
kind_of(const char *name, size_t len, PyObject *images, PyObject *others)
{
    const char *dot = strrchr(name, '.');
    if (dot == NULL || dot == name)
        return 0;
    PyObject *ext = PyUnicode_DecodeFSDefaultAndSize(dot, (Py_ssize_t)(name + len - dot));
    if (ext == NULL)
        return -1;
    int kind = PySet_Contains(images, ext);
    if (kind == 0) {
        PyObject *lower = PyObject_CallMethod(ext, "lower", NULL);
        kind = lower == NULL ? -1 : PySet_Contains(others, lower);
        Py_XDECREF(lower);
        if (kind == 1)
            kind = 2;
    }
    Py_DECREF(ext);
    return kind;
}

static PyObject *
list_dir(PyObject *self, PyObject *args)
{
    PyObject *given, *prefix, *images, *others, *path, *head = NULL, *result = NULL;
    PyObject *lists[4] = {NULL, NULL, NULL, NULL}; /* images, ignored, others, folders */
    char *buf = NULL;
    size_t cap = 0;
    if (!PyArg_ParseTuple(args, "OUO!O!", &given, &prefix, &PyFrozenSet_Type, &images,
                          &PyFrozenSet_Type, &others))
        return NULL;
    if (!PyUnicode_FSConverter(given, &path))
        return NULL;
    DIR *dir;
    Py_BEGIN_ALLOW_THREADS
    dir = opendir(PyBytes_AS_STRING(path));
    Py_END_ALLOW_THREADS
    if (dir == NULL) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, given);
        Py_DECREF(path);
        return NULL;
    }
    head = PyUnicode_EncodeFSDefault(prefix);
    if (head == NULL)
        goto done;
    for (int i = 0; i < 4; i++)
        if ((lists[i] = PyList_New(0)) == NULL)
            goto done;
    for (;;) {
        errno = 0;
        struct dirent *entry = readdir(dir);
        if (entry == NULL) {
            if (errno != 0) {
                PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, given);
                goto done;
            }
            break;
        }
        const char *name = entry->d_name;
        size_t len = strlen(name);
        if (name[0] == '.' && (len == 1 || (len == 2 && name[1] == '.')))
            continue;
        int is_dir = 0;
#ifdef _DIRENT_HAVE_D_TYPE
        if (entry->d_type == DT_DIR)
            is_dir = 1;
        else if (entry->d_type == DT_LNK || entry->d_type == DT_UNKNOWN)
#endif
        {
            struct stat st;
            is_dir = fstatat(dirfd(dir), name, &st, 0) == 0 && S_ISDIR(st.st_mode);
        }
        if (is_dir) {
            if (append_path(lists[3], "", 0, name, len, &buf, &cap) < 0)
                goto done;
            continue;
        }
        if (name[0] == '.')
            continue; /* glob("*") skips dot-files */
        int kind = kind_of(name, len, images, others);
        if (kind < 0 || append_path(lists[kind == 0 ? 2 : kind - 1], PyBytes_AS_STRING(head),
                                    (size_t)PyBytes_GET_SIZE(head), name, len, &buf, &cap) < 0)
            goto done;
    }
    for (int i = 0; i < 3; i++)
        if (PyList_Sort(lists[i]) < 0)
            goto done;
    result = PyTuple_Pack(4, lists[0], lists[1], lists[2], lists[3]);
done:
    closedir(dir);
    for (int i = 0; i < 4; i++)
        Py_XDECREF(lists[i]);
    Py_XDECREF(head);
    Py_DECREF(path);
    PyMem_Free(buf);
    return result;
}
#endif

static PyMethodDef methods[] = {
    {"score", score, METH_VARARGS,
     "score(pixels, h, w, f, g, out, index) -> (sum, sum of squares) of the 4-neighbour "
     "Laplacian over the interior of an h x w 8-bit image ((0, 0) below 3 x 3), whose blocks "
     "of f rows by g columns it also sums into image index of the float32 buffer out "
     "(h / f rows of w / g). pixels: a bytes-like object, or the Arrow (schema, array) "
     "capsules of PIL's Image.__arrow_c_array__()."},
#ifdef HAVE_STAT_MANY
    {"stat_many", stat_many, METH_VARARGS,
     "stat_many(paths, threads) -> [(size, mtime_ns, inode, mode) or errno] of each path "
     "(str or bytes), as os.stat gives them, stat'ed on up to threads threads"},
    {"list_dir", list_dir, METH_VARARGS,
     "list_dir(path, prefix, images, others) -> (images, ignored, others, folders): the "
     "entries of path but . and .., as lorac.scan.dataset.list_folder sorts them: prefix + "
     "name of each file (not starting with '.') whose extension is in images, whose lower "
     "case extension is in others, or neither, each list sorted; and the names of the "
     "folders (what os.DirEntry.is_dir() calls one), unsorted"},
#endif
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native", "The dataset scan's hot loops.", -1, methods,
};

PyMODINIT_FUNC
PyInit__native(void)
{
#ifdef HAVE_AVX2_PASS
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && getenv("LORAC_NATIVE_BASELINE") == NULL)
        scan_image = scan_image_avx2;
#endif
    PyObject *module_object = PyModule_Create(&module);
    if (module_object != NULL && PyModule_AddStringConstant(
            module_object, "PASS", scan_image == scan_image_base ? "baseline" : "avx2") < 0)
        Py_CLEAR(module_object);
    return module_object;
}
