/* layers.c: the built-in layers, each a module with its own forward function composed
 * from public ops: dense, dropout, embedding, activation, flatten, reshape, sequential.
 * Layers with weights build them on the first call, when the input's last dimension is
 * known, from the counter-based generator (so they depend only on the seed and the draws
 * before), outside any trace or tape (tj_nn_weight). Errors name the layer. */
#include "nn/nn.h"

#include <math.h>
#include <stdio.h>

bool tj_nn_activation_valid(tj_activation act) {
    switch (act) {
    case TJ_ACT_LINEAR: case TJ_ACT_RELU: case TJ_ACT_TANH: case TJ_ACT_SIGMOID: case TJ_ACT_SOFTMAX:
        return true;
    }
    return false;
}

tj_tensor *tj_nn_activate(tj_tensor *x, tj_activation act) {
    switch (act) {
    case TJ_ACT_LINEAR: return x;
    case TJ_ACT_RELU: return tj_relu(x);
    case TJ_ACT_TANH: return tj_tanh(x);
    case TJ_ACT_SIGMOID: return tj_sigmoid(x);
    case TJ_ACT_SOFTMAX: return tj_softmax(x, -1);
    }
    return NULL;
}

static int bad_activation(const char *op, tj_activation act) {
    return tj_err(TJ_ERR_ARG, "%s: activation %d is not a tj_activation", op, (int)act);
}

/* ---- dense: y = act(x @ kernel + bias), kernel (in, units), bias (units,) ------------------ */

static tj_tensor *dense_forward(tj_module *m, tj_tensor *x, bool training) {
    (void)training;
    tensor *t = tj_resolve(x, m->name, 1);
    if (!t) return NULL;
    char s[TJ_SHAPE_STR_MAX];
    if (!tj_dtype_is_float(t->dtype))
        return tj_err(TJ_ERR_DTYPE, "%s: inputs must be float32 or float64, got %s", m->name,
                      tj_dtype_name(t->dtype)), NULL;
    if (t->shape.ndim < 2)
        return tj_err(TJ_ERR_SHAPE, "%s: inputs must have rank >= 2 (batch, ..., features), got %s", m->name,
                      tj_shape_str(&t->shape, s, sizeof s)), NULL;
    int64_t in = t->shape.dim[t->shape.ndim - 1];
    if (!m->u.dense.built) {
        /* glorot uniform: U(-l, l), l = sqrt(6 / (fan_in + fan_out)); weights in the input's dtype */
        int64_t units = m->u.dense.units;
        double limit = sqrt(6.0 / (double)(in + units));
        tj_tensor *k = tj_nn_weight(m, "kernel", TJ_SHAPE(in, units), t->dtype, -limit, limit);
        tj_tensor *b = k && m->u.dense.use_bias ? tj_nn_weight(m, "bias", TJ_SHAPE(units), t->dtype, 0, 0) : NULL;
        if (!k || (m->u.dense.use_bias && !b)) return NULL;
        m->u.dense.kernel = k;
        m->u.dense.bias = b;
        m->u.dense.in = in;
        m->u.dense.dt = t->dtype;
        m->u.dense.built = true;
    } else if (in != m->u.dense.in) {
        return tj_err(TJ_ERR_SHAPE, "%s: built for inputs of width %lld, got %s", m->name,
                      (long long)m->u.dense.in, tj_shape_str(&t->shape, s, sizeof s)), NULL;
    } else if (t->dtype != m->u.dense.dt) {
        return tj_err(TJ_ERR_DTYPE, "%s: built for %s inputs, got %s", m->name, tj_dtype_name(m->u.dense.dt),
                      tj_dtype_name(t->dtype)), NULL;
    }
    tj_tensor *y = tj_matmul(x, m->u.dense.kernel);
    if (m->u.dense.use_bias) y = tj_add(y, m->u.dense.bias);
    return tj_nn_activate(y, m->u.dense.act);
}

tj_module *tj_dense(const char *name, int64_t units, tj_activation act, bool use_bias) {
    if (units < 1) return tj_err(TJ_ERR_ARG, "dense: units must be >= 1, got %lld", (long long)units), NULL;
    if (units > TJ_MAX_NUMEL) return tj_err(TJ_ERR_ARG, "dense: units %lld is too large", (long long)units), NULL;
    if (!tj_nn_activation_valid(act)) return bad_activation("dense", act), NULL;
    tj_module *m = tj_nn_module_new(NN_DENSE, name, "dense", "dense", dense_forward, NULL);
    if (!m) return NULL;
    m->u.dense.units = units;
    m->u.dense.act = act;
    m->u.dense.use_bias = use_bias;
    return m;
}

/* ---- dropout ------------------------------------------------------------------------------- */

static tj_tensor *dropout_forward(tj_module *m, tj_tensor *x, bool training) {
    return tj_dropout(x, m->u.dropout.rate, training);
}

tj_module *tj_dropout_layer(const char *name, double rate) {
    if (!(rate >= 0 && rate < 1))
        return tj_err(TJ_ERR_ARG, "dropout_layer: rate %g is outside [0, 1)", rate), NULL;
    tj_module *m = tj_nn_module_new(NN_DROPOUT, name, "dropout", "dropout_layer", dropout_forward, NULL);
    if (m) m->u.dropout.rate = rate;
    return m;
}

/* ---- embedding: ids (...) int32 -> table[ids] (..., dim); table (vocab, dim) ~ U(-0.05, 0.05) */

static tj_tensor *embedding_forward(tj_module *m, tj_tensor *x, bool training) {
    (void)training;
    tensor *t = tj_resolve(x, m->name, 1);
    if (!t) return NULL;
    if (t->dtype != TJ_I32)
        return tj_err(TJ_ERR_DTYPE, "%s: ids must be int32, got %s", m->name, tj_dtype_name(t->dtype)), NULL;
    if (!m->u.emb.table) {
        m->u.emb.table = tj_nn_weight(m, "embeddings", TJ_SHAPE(m->u.emb.vocab, m->u.emb.dim), TJ_F32,
                                      -0.05, 0.05);
        if (!m->u.emb.table) return NULL;
    }
    return tj_gather(m->u.emb.table, x, 0);   /* an id outside [0, vocab) is gather's error */
}

tj_module *tj_embedding(const char *name, int64_t vocab, int64_t dim) {
    if (vocab < 1 || dim < 1)
        return tj_err(TJ_ERR_ARG, "embedding: vocab and dim must be >= 1, got %lld and %lld", (long long)vocab,
                      (long long)dim), NULL;
    if (vocab > TJ_MAX_NUMEL / dim)
        return tj_err(TJ_ERR_ARG, "embedding: a (%lld, %lld) table is too large", (long long)vocab,
                      (long long)dim), NULL;
    tj_module *m = tj_nn_module_new(NN_EMBEDDING, name, "embedding", "embedding", embedding_forward, NULL);
    if (!m) return NULL;
    m->u.emb.vocab = vocab;
    m->u.emb.dim = dim;
    return m;
}

/* ---- activation ---------------------------------------------------------------------------- */

static tj_tensor *activation_forward(tj_module *m, tj_tensor *x, bool training) {
    (void)training;
    return tj_nn_activate(x, m->u.act.act);
}

tj_module *tj_activation_layer(const char *name, tj_activation act) {
    if (!tj_nn_activation_valid(act)) return bad_activation("activation_layer", act), NULL;
    tj_module *m = tj_nn_module_new(NN_ACTIVATION, name, "activation", "activation_layer", activation_forward, NULL);
    if (m) m->u.act.act = act;
    return m;
}

/* ---- flatten and reshape: the batch dim stays ---------------------------------------------- */

static tj_tensor *flatten_forward(tj_module *m, tj_tensor *x, bool training) {
    (void)training;
    tensor *t = tj_resolve(x, m->name, 1);
    if (!t) return NULL;
    if (t->shape.ndim < 1)
        return tj_err(TJ_ERR_SHAPE, "%s: inputs must have a batch dimension, got a scalar", m->name), NULL;
    int64_t n = 1;
    for (int d = 1; d < t->shape.ndim; d++) n *= t->shape.dim[d];
    return tj_reshape(x, TJ_SHAPE(t->shape.dim[0], n));
}

tj_module *tj_flatten(const char *name) {
    return tj_nn_module_new(NN_FLATTEN, name, "flatten", "flatten", flatten_forward, NULL);
}

/* "(None, 4, -1)" */
static char *target_str(const tj_shape *target, char *buf, size_t size) {
    size_t k = (size_t)snprintf(buf, size, "(None");
    for (int d = 0; d < target->ndim && k < size; d++)
        k += (size_t)snprintf(buf + k, size - k, ", %lld", (long long)target->dim[d]);
    if (k < size) snprintf(buf + k, size - k, target->ndim ? ")" : ",)");
    return buf;
}

static tj_tensor *reshape_forward(tj_module *m, tj_tensor *x, bool training) {
    (void)training;
    tensor *t = tj_resolve(x, m->name, 1);
    if (!t) return NULL;
    const tj_shape *target = &m->u.reshape.target;
    char a[TJ_SHAPE_STR_MAX], b[TJ_SHAPE_STR_MAX + 8];
    if (t->shape.ndim < 1)
        return tj_err(TJ_ERR_SHAPE, "%s: inputs must have a batch dimension, got a scalar", m->name), NULL;
    int64_t per = 1, known = 1;            /* elements per sample; product of the known target dims */
    int infer = -1;
    for (int d = 1; d < t->shape.ndim; d++) per *= t->shape.dim[d];
    for (int d = 0; d < target->ndim; d++) {
        if (target->dim[d] == -1) infer = d;
        else known *= target->dim[d];
    }
    tj_shape out = {.ndim = target->ndim + 1};
    out.dim[0] = t->shape.dim[0];
    for (int d = 0; d < target->ndim; d++) out.dim[d + 1] = target->dim[d];
    if (infer >= 0 && known > 0 && per % known == 0) out.dim[infer + 1] = per / known;
    else if (infer >= 0 || known != per)
        return tj_err(TJ_ERR_SHAPE, "%s: cannot reshape %s to %s", m->name, tj_shape_str(&t->shape, a, sizeof a),
                      target_str(target, b, sizeof b)), NULL;
    return tj_reshape(x, out);
}

tj_module *tj_reshape_layer(const char *name, tj_shape target) {
    char s[TJ_SHAPE_STR_MAX];
    if (target.ndim < 0 || target.ndim > TJ_MAX_DIMS - 1)
        return tj_err(TJ_ERR_ARG, "reshape_layer: target rank %d is outside [0, %d]", target.ndim,
                      TJ_MAX_DIMS - 1), NULL;
    int infer = 0;
    int64_t known = 1;
    for (int d = 0; d < target.ndim; d++) {
        infer += target.dim[d] == -1;
        if (target.dim[d] < -1 || infer > 1)
            return tj_err(TJ_ERR_ARG, "reshape_layer: bad target %s (dims >= 0, one -1 at most)",
                          tj_shape_str(&target, s, sizeof s)), NULL;
        if (target.dim[d] > 0 && known > TJ_MAX_NUMEL / target.dim[d])
            return tj_err(TJ_ERR_ARG, "reshape_layer: target %s has too many elements",
                          tj_shape_str(&target, s, sizeof s)), NULL;
        if (target.dim[d] >= 0) known *= target.dim[d];
    }
    tj_module *m = tj_nn_module_new(NN_RESHAPE, name, "reshape", "reshape_layer", reshape_forward, NULL);
    if (m) m->u.reshape.target = target;
    return m;
}

/* ---- sequential: the children in the order added ------------------------------------------- */

static tj_tensor *sequential_forward(tj_module *m, tj_tensor *x, bool training) {
    for (int i = 0; i < m->nchild && x; i++) x = tj_module_call(m->child[i], x, training);
    return x;
}

tj_module *tj_sequential(const char *name, int n, tj_module *const *layers) {
    bool ok = true;
    if (n < 0 || (n > 0 && !layers)) {
        tj_err(TJ_ERR_ARG, "sequential: n is %d and layers is %s", n, layers ? "set" : "NULL");
        return NULL;
    }
    tj_module *m = tj_nn_module_new(NN_SEQUENTIAL, name, "sequential", "sequential", sequential_forward, NULL);
    for (int i = 0; i < n; i++) {     /* every layer is taken, also on failure */
        if (!layers[i]) {
            tj_err(TJ_ERR_ARG, "sequential: layer %d is NULL", i);
            ok = false;
        } else if (!m) {
            if (!layers[i]->parent) tj_module_free(layers[i]);
        } else {
            ok = tj_module_add(m, layers[i]) && ok;
        }
    }
    if (!ok) {
        tj_module_free(m);
        return NULL;
    }
    return m;
}
