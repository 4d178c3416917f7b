/* lorac.scan._pixels: the two per-pixel loops of the dataset scan, in C.
 *
 * lorac.scan.dataset scores every image on its 8-bit grey downscale (at most 256 px on the
 * long side): the variance of its 4-neighbour Laplacian and a perceptual hash. In numpy
 * each is a dozen passes over the pixels through work arrays; at 256 px those passes cost
 * a third as much as decoding the JPEG. Here each is one pass, with the same exact integer
 * arithmetic: the results are the numpy path's, bit for bit (tests/test_dataset.py compares
 * them), and the scan uses numpy when this module was not built (the extension is optional:
 * a machine without a C compiler installs lorac without it).
 *
 * Both functions take a C-contiguous buffer of k images of h rows of w bytes.
 */

#if defined(__GNUC__) && !defined(__clang__)
/* the row loops are written to vectorise; GCC does that only from -O3 (clang at -O2) */
#pragma GCC optimize("O3")
#endif

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

static int
check_images(Py_buffer *buf, Py_ssize_t k, Py_ssize_t h, Py_ssize_t w)
{
    if (k < 0 || h < 1 || w < 1 || (k && h > PY_SSIZE_T_MAX / w / k)) {
        PyErr_SetString(PyExc_ValueError, "image count and sides must be positive");
        return -1;
    }
    if (buf->len < k * h * w) {
        PyErr_Format(PyExc_ValueError, "buffer of %zd bytes holds fewer than %zd images of "
                     "%zd x %zd", buf->len, k, h, w);
        return -1;
    }
    return 0;
}

/* Sum and sum of squares of up + down + left + right - 4 * centre over the interior of one
 * image (every pixel with four neighbours). |value| <= 1020, so a row of up to 2,064 squares
 * sums in int32; rows are added in int64. */
static void
laplacian_one(const uint8_t *a, Py_ssize_t h, Py_ssize_t w, int64_t *sum, int64_t *squares)
{
    int64_t s1 = 0, s2 = 0;
    for (Py_ssize_t y = 1; y < h - 1; y++) {
        const uint8_t *up = a + (y - 1) * w, *row = a + y * w, *down = a + (y + 1) * w;
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

#define MAX_LAPLACIAN_ROW 2064 /* (2**31 - 1) // 1020**2: its squares sum in int32 */

static PyObject *
laplacian_sums(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    Py_ssize_t k, h, w;
    if (!PyArg_ParseTuple(args, "y*nnn", &buf, &k, &h, &w))
        return NULL;
    PyObject *out = NULL;
    if (check_images(&buf, k, h, w) < 0)
        goto done;
    if (h < 3 || w < 3 || w > MAX_LAPLACIAN_ROW) {
        PyErr_Format(PyExc_ValueError, "images of %zd x %zd: the Laplacian needs 3 to %d "
                     "columns and 3 rows or more", h, w, MAX_LAPLACIAN_ROW);
        goto done;
    }
    int64_t *sums = PyMem_Malloc(sizeof(int64_t) * 2 * (k ? k : 1));
    if (sums == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const uint8_t *pixels = buf.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < k; i++)
        laplacian_one(pixels + i * h * w, h, w, &sums[2 * i], &sums[2 * i + 1]);
    Py_END_ALLOW_THREADS
    out = PyList_New(k);
    for (Py_ssize_t i = 0; out != NULL && i < k; i++) {
        PyObject *pair = Py_BuildValue("(LL)", (long long)sums[2 * i],
                                       (long long)sums[2 * i + 1]);
        if (pair == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, i, pair);
    }
    PyMem_Free(sums);
done:
    PyBuffer_Release(&buf);
    return out;
}

/* out[i][r][x] = sum of rows r*f .. r*f+f-1 of image i at column x, as float32 (exact: at
 * most 2**24 / 255 rows are summed). */
static PyObject *
row_sums(PyObject *self, PyObject *args)
{
    Py_buffer buf, dst;
    Py_ssize_t k, h, w, f;
    if (!PyArg_ParseTuple(args, "y*nnnnw*", &buf, &k, &h, &w, &f, &dst))
        return NULL;
    PyObject *out = NULL;
    if (check_images(&buf, k, h, w) < 0)
        goto done;
    if (f < 1 || h % f || f > (1 << 24) / 255) {
        PyErr_Format(PyExc_ValueError, "cannot sum %zd rows at a time of %zd", f, h);
        goto done;
    }
    if (dst.len < (Py_ssize_t)sizeof(float) * k * (h / f) * w) {
        PyErr_SetString(PyExc_ValueError, "output buffer too small");
        goto done;
    }
    const uint8_t *pixels = buf.buf;
    float *sums = dst.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < k * (h / f); i++) {
        const uint8_t *rows = pixels + i * f * w;
        float *o = sums + i * w;
        for (Py_ssize_t x = 0; x < w; x++)
            o[x] = (float)rows[x];
        for (Py_ssize_t j = 1; j < f; j++)
            for (Py_ssize_t x = 0; x < w; x++)
                o[x] += (float)rows[j * w + x];
    }
    Py_END_ALLOW_THREADS
    out = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&buf);
    PyBuffer_Release(&dst);
    return out;
}

static PyMethodDef methods[] = {
    {"laplacian_sums", laplacian_sums, METH_VARARGS,
     "laplacian_sums(pixels, k, h, w) -> [(sum, sum of squares)] of the 4-neighbour "
     "Laplacian over each image's interior"},
    {"row_sums", row_sums, METH_VARARGS,
     "row_sums(pixels, k, h, w, f, out) -> None: sums of f consecutive rows into the float32 "
     "buffer out (k x h/f x w)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_pixels", "The per-pixel loops of the dataset scan.", -1, methods,
};

PyMODINIT_FUNC
PyInit__pixels(void)
{
    return PyModule_Create(&module);
}
