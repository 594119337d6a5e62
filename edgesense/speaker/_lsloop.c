/* Compiled per-sample loop of edgesense.speaker.largesignal._integrate (optional C99 extension).
 *
 * integrate(i, state, p, out) -> None does exactly what the Python function of the same name does:
 * the same double-precision operations in the same order (every expression below is written as
 * the Python one, and C evaluates a * b * c as (a * b) * c and a - b + c as (a - b) + c, as Python
 * does), so the output and the final state are bit-identical to the Python loop. That needs
 * IEEE-754 doubles evaluated at their own precision (FLT_EVAL_METHOD 0: SSE2 on x86, any 64-bit
 * ARM) and no contraction of a * b + c into a fused multiply-add: setup.py compiles this file with
 * -ffp-contract=off on gcc and clang, and the pragma below asks the same of any C99 compiler.
 *
 *   i      float64 samples (A): a C-contiguous buffer of format 'd' (e.g. a numpy float64 array)
 *   state  list [x, v, g] (m, m/s, N), replaced in place by the state after the last sample
 *   p      17 floats (Phi 2x2, Gam 2, Bl0, b1..b4, K0, k1, k2, Le0 l1, Le0 l2, 1/Xmax)
 *   out    writable C-contiguous float64 buffer of the same length: x (m) per sample
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <string.h>

#if !defined(__GNUC__) || defined(__clang__)   /* gcc ignores the pragma: -ffp-contract=off there */
#pragma STDC FP_CONTRACT OFF
#endif

#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "doubles must be evaluated at double precision (FLT_EVAL_METHOD 0) for bit-identity with Python"
#endif

#define XI_CLIP 1.6 /* as largesignal.XI_CLIP */

static int
get_doubles(PyObject *obj, Py_buffer *view, int writable, const char *name)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) != 0) {
        PyErr_Format(PyExc_TypeError, "integrate: %s must be a %sC-contiguous float64 array", name,
                     writable ? "writable " : "");
        return -1;
    }
    if (view->ndim != 1 || view->itemsize != (Py_ssize_t)sizeof(double) || view->format == NULL
        || !(strcmp(view->format, "d") == 0 || strcmp(view->format, "=d") == 0
             || strcmp(view->format, "@d") == 0)) {
        PyErr_Format(PyExc_TypeError, "integrate: %s must be a 1-D native float64 array (got format '%s', %d-D)",
                     name, view->format ? view->format : "B", view->ndim);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static PyObject *
integrate(PyObject *self, PyObject *args)
{
    PyObject *i_obj, *state, *out_obj;
    double f11, f12, f21, f22, ga, gb, bl0, b1, b2, b3, b4, k0, k1, k2, lp1, lp2, ixm;
    double x, v, g0;
    Py_buffer iv, ov;
    (void)self;

    if (!PyArg_ParseTuple(args, "OO!(ddddddddddddddddd)O:integrate", &i_obj, &PyList_Type, &state,
                          &f11, &f12, &f21, &f22, &ga, &gb, &bl0, &b1, &b2, &b3, &b4, &k0, &k1, &k2,
                          &lp1, &lp2, &ixm, &out_obj))
        return NULL;
    if (PyList_GET_SIZE(state) != 3) {
        PyErr_SetString(PyExc_ValueError, "integrate: state must be a list [x, v, g] of 3 floats");
        return NULL;
    }
    x = PyFloat_AsDouble(PyList_GET_ITEM(state, 0));
    if (x == -1.0 && PyErr_Occurred())
        return NULL;
    v = PyFloat_AsDouble(PyList_GET_ITEM(state, 1));
    if (v == -1.0 && PyErr_Occurred())
        return NULL;
    g0 = PyFloat_AsDouble(PyList_GET_ITEM(state, 2));
    if (g0 == -1.0 && PyErr_Occurred())
        return NULL;
    if (get_doubles(i_obj, &iv, 0, "i") != 0)
        return NULL;
    if (get_doubles(out_obj, &ov, 1, "out") != 0) {
        PyBuffer_Release(&iv);
        return NULL;
    }
    if (iv.len != ov.len) {
        PyErr_Format(PyExc_ValueError, "integrate: i and out differ in length: %zd vs %zd",
                     iv.len / (Py_ssize_t)sizeof(double), ov.len / (Py_ssize_t)sizeof(double));
        PyBuffer_Release(&iv);
        PyBuffer_Release(&ov);
        return NULL;
    }
    {
        const double *in = (const double *)iv.buf;
        double *xs = (double *)ov.buf;
        const Py_ssize_t n = iv.len / (Py_ssize_t)sizeof(double);
        const double c = XI_CLIP, mc = -XI_CLIP;
        const double q1 = 0.5 * lp1 * ixm, q2 = lp2 * ixm;    /* 1/2 L'(x) = q1 + q2 xi_c */
        Py_ssize_t k;
        /* the samples are read before x is written, so i and out may be the same array */
        for (k = 0; k < n; k++) {
            const double ii = in[k];
            const double xp = f11 * x + f12 * v + ga * g0;
            const double vp = f21 * x + f22 * v + gb * g0;
            const double ii2 = ii * ii;
            double xi, xc, g, xe;
            xi = xp * ixm;                                      /* predictor */
            xc = xi > c ? c : (xi < mc ? mc : xi);
            g = (bl0 * (1.0 + xc * (b1 + xc * (b2 + xc * (b3 + xc * b4)))) * ii
                 - k0 * xi * (k1 + k2 * xi) * xp + ii2 * (q1 + q2 * xc));
            xe = xp + ga * g;
            xi = xe * ixm;                                      /* corrector */
            xc = xi > c ? c : (xi < mc ? mc : xi);
            g0 = (bl0 * (1.0 + xc * (b1 + xc * (b2 + xc * (b3 + xc * b4)))) * ii
                  - k0 * xi * (k1 + k2 * xi) * xe + ii2 * (q1 + q2 * xc));
            x = xp + ga * g0;
            v = vp + gb * g0;
            xs[k] = x;
        }
    }
    PyBuffer_Release(&iv);
    PyBuffer_Release(&ov);
    {
        PyObject *px = PyFloat_FromDouble(x), *pv = PyFloat_FromDouble(v), *pg = PyFloat_FromDouble(g0);
        if (px == NULL || pv == NULL || pg == NULL) {
            Py_XDECREF(px);
            Py_XDECREF(pv);
            Py_XDECREF(pg);
            return NULL;
        }
        PyList_SetItem(state, 0, px);   /* steals the references */
        PyList_SetItem(state, 1, pv);
        PyList_SetItem(state, 2, pg);
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"integrate", integrate, METH_VARARGS,
     "integrate(i, state, p, out): the large-signal estimator's per-sample loop (bit-identical to "
     "edgesense.speaker.largesignal._integrate)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_lsloop", "Compiled per-sample loop of the large-signal excursion estimator.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__lsloop(void)
{
    return PyModule_Create(&module);
}
