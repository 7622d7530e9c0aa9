/* check_nn.c: modules, layers and losses. Dense against a double reference, seeded and
 * glorot-bounded weights, lazy build, the Keras guide's flow, variable order and paths in
 * a nested generator, parameter counts, the summary text, model gradients against finite
 * differences in f64 for every loss, each loss against a double reference (extreme logits
 * included), a model trained compiled bit-identical to eager, and every user error. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EPS 1e-6
#define ATOL 1e-5
#define RTOL 1e-3

static void setup(void) { tj_scope_begin(); tj_clear_error(); }
static void teardown(void) { tj_set_mode(TJ_MODE_JIT); tj_scope_end(); tj_clear_error(); }

static tj_tensor *randn(tj_shape s, tj_dtype dt) { return tj_cast(tj_rand_normal(s, 0, 1), dt); }

static void assert_shape(tj_tensor *t, tj_shape want) {
    tj_shape s = tj_tensor_shape(t);
    ck_assert_int_eq(s.ndim, want.ndim);
    for (int d = 0; d < s.ndim; d++) ck_assert_int_eq(s.dim[d], want.dim[d]);
}

static void assert_close(double got, double want, double tol) {
    ck_assert_msg(fabs(got - want) <= tol * (1 + fabs(want)), "got %.10g, want %.10g", got, want);
}

/* ---- a two-layer MLP as the Keras guide writes it (keras_model_custom) -------------------- */

typedef struct { tj_module *dense1, *drop, *dense2; } mlp;

static tj_tensor *mlp_forward(tj_module *m, tj_tensor *x, bool training) {
    mlp *self = tj_module_user(m);
    x = tj_module_call(self->dense1, x, training);
    if (self->drop) x = tj_module_call(self->drop, x, training);
    return tj_module_call(self->dense2, x, training);
}

static tj_module *mlp_new(const char *name, mlp *self, int64_t hidden, int64_t out, tj_activation act, double drop) {
    tj_module *m = tj_module_new(name, mlp_forward, self);
    self->dense1 = tj_module_add(m, tj_dense("dense1", hidden, TJ_ACT_RELU, true));
    self->drop = drop > 0 ? tj_module_add(m, tj_dropout_layer("drop", drop)) : NULL;
    self->dense2 = tj_module_add(m, tj_dense("dense2", out, act, true));
    return m;
}

/* ---- dense --------------------------------------------------------------------------------- */

static double act_ref(tj_activation act, double v) {
    switch (act) {
    case TJ_ACT_LINEAR: return v;
    case TJ_ACT_RELU: return v > 0 ? v : 0;
    case TJ_ACT_TANH: return tanh(v);
    case TJ_ACT_SIGMOID: return 1 / (1 + exp(-v));
    case TJ_ACT_SOFTMAX: break;
    }
    return NAN;
}

START_TEST(dense_forward_matches_double_reference) {
    const tj_activation acts[] = {TJ_ACT_LINEAR, TJ_ACT_RELU, TJ_ACT_TANH, TJ_ACT_SIGMOID, TJ_ACT_SOFTMAX};
    for (int a = 0; a < 5; a++) {
        tj_seed(11 + (uint64_t)a);
        enum { B = 4, I = 3, U = 5 };
        tj_tensor *x = randn(TJ_SHAPE(B, I), TJ_F32);
        tj_module *d = tj_dense("d", U, acts[a], true);
        ck_assert_ptr_nonnull(tj_module_call(d, x, false));   /* builds */
        tj_tensor *vars[2];
        ck_assert_int_eq(tj_module_variables(d, 2, vars), 2);
        ck_assert_int_eq(tj_assign(vars[1], randn(TJ_SHAPE(U), TJ_F32)), 0);   /* a bias that shows */
        tj_tensor *y = tj_module_call(d, x, false);
        assert_shape(y, TJ_SHAPE(B, U));
        for (int b = 0; b < B; b++) {
            double z[U], zmax = -INFINITY, zsum = 0;
            for (int u = 0; u < U; u++) {
                z[u] = tu_get(vars[1], u);
                for (int i = 0; i < I; i++) z[u] += tu_get(x, b * I + i) * tu_get(vars[0], i * U + u);
                zmax = fmax(zmax, z[u]);
            }
            for (int u = 0; u < U; u++) zsum += exp(z[u] - zmax);
            for (int u = 0; u < U; u++) {
                double want = acts[a] == TJ_ACT_SOFTMAX ? exp(z[u] - zmax) / zsum : act_ref(acts[a], z[u]);
                assert_close(tu_get(y, b * U + u), want, 2e-6);
            }
        }
        tj_module_free(d);
    }
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

/* The kernel's bits after building on a (2, in) input, seeded. */
static float *kernel_bits(uint64_t seed, int64_t in, int64_t units) {
    tj_seed(seed);
    tj_module *d = tj_dense("d", units, TJ_ACT_LINEAR, true);
    tj_module_call(d, tj_ones(TJ_F32, TJ_SHAPE(2, in)), false);
    tj_tensor *k;
    ck_assert_int_eq(tj_module_variables(d, 1, &k), 2);
    float *bits = malloc(sizeof(float) * (size_t)(in * units));
    memcpy(bits, tj_tensor_data(k), sizeof(float) * (size_t)(in * units));
    tj_module_free(d);
    return bits;
}

START_TEST(weights_depend_only_on_the_seed) {
    float *a = kernel_bits(42, 6, 7);
    tj_rand_uniform(TJ_SHAPE(100), 0, 1);          /* draws in between change nothing once reseeded */
    float *b = kernel_bits(42, 6, 7), *c = kernel_bits(43, 6, 7);
    ck_assert(memcmp(a, b, sizeof(float) * 42) == 0);
    ck_assert(memcmp(a, c, sizeof(float) * 42) != 0);
    free(a);
    free(b);
    free(c);
}
END_TEST

START_TEST(glorot_uniform_bounds) {
    enum { I = 30, U = 50 };
    tj_seed(5);
    tj_module *d = tj_dense("d", U, TJ_ACT_LINEAR, true);
    ck_assert_ptr_nonnull(tj_module_call(d, tj_zeros(TJ_F32, TJ_SHAPE(1, I)), false));
    tj_tensor *v[2];
    tj_module_variables(d, 2, v);
    double limit = sqrt(6.0 / (I + U)), amax = 0, sum = 0, sq = 0;
    for (int i = 0; i < I * U; i++) {
        double k = tu_get(v[0], i);
        ck_assert_msg(fabs(k) <= limit, "kernel %d is %g, limit %g", i, k, limit);
        amax = fmax(amax, fabs(k));
        sum += k;
        sq += k * k;
    }
    double n = I * U, mean = sum / n, var = sq / n - mean * mean;
    ck_assert(amax > 0.98 * limit);                  /* uses the whole range */
    ck_assert(fabs(mean) < 0.05 * limit);
    assert_close(var, limit * limit / 3, 0.1);       /* U(-l, l) has variance l^2/3 */
    for (int u = 0; u < U; u++) ck_assert(tu_get(v[1], u) == 0.0);
    tj_module_free(d);
}
END_TEST

START_TEST(dense_builds_lazily) {
    tj_module *d = tj_dense("dense1", 4, TJ_ACT_RELU, true);
    ck_assert_int_eq(tj_module_variables(d, 0, NULL), 0);
    ck_assert_int_eq(tj_module_param_count(d), 0);
    ck_assert_ptr_nonnull(tj_module_call(d, tj_ones(TJ_F32, TJ_SHAPE(2, 7)), false));
    tj_tensor *v[3];
    ck_assert_int_eq(tj_module_variables(d, 3, v), 2);
    assert_shape(v[0], TJ_SHAPE(7, 4));
    assert_shape(v[1], TJ_SHAPE(4));
    ck_assert_str_eq(tj_variable_name(v[0]), "kernel");
    ck_assert_str_eq(tj_variable_name(v[1]), "bias");
    ck_assert_int_eq(tj_module_param_count(d), 7 * 4 + 4);
    /* a later call of another batch size reuses the weights; rank 3 applies to the last axis */
    ck_assert_ptr_nonnull(tj_module_call(d, tj_ones(TJ_F32, TJ_SHAPE(5, 7)), false));
    assert_shape(tj_module_call(d, tj_ones(TJ_F32, TJ_SHAPE(2, 3, 7)), false), TJ_SHAPE(2, 3, 4));
    ck_assert_int_eq(tj_module_variables(d, 0, NULL), 2);
    tj_module *nb = tj_dense("nobias", 3, TJ_ACT_LINEAR, false);
    tj_module_call(nb, tj_ones(TJ_F32, TJ_SHAPE(1, 2)), false);
    ck_assert_int_eq(tj_module_param_count(nb), 6);
    tj_module_free(nb);
    tj_module_free(d);
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

START_TEST(dense_wrong_width_is_an_error) {
    tj_module *d = tj_dense("dense1", 2, TJ_ACT_LINEAR, true);
    ck_assert_ptr_nonnull(tj_module_call(d, tj_ones(TJ_F32, TJ_SHAPE(10, 3)), false));
    ck_assert_ptr_null(tj_module_call(d, tj_ones(TJ_F32, TJ_SHAPE(10, 4)), false));
    ck_assert_error(TJ_ERR_SHAPE, "dense1: built for inputs of width 3, got (10, 4)");
    ck_assert_ptr_null(tj_module_call(d, tj_ones(TJ_F64, TJ_SHAPE(10, 3)), false));
    ck_assert_error(TJ_ERR_DTYPE, "dense1: built for float32 inputs, got float64");
    ck_assert_ptr_null(tj_module_call(d, tj_ones(TJ_I32, TJ_SHAPE(10, 3)), false));
    ck_assert_error(TJ_ERR_DTYPE, "dense1: inputs must be float32 or float64, got int32");
    ck_assert_ptr_null(tj_module_call(d, tj_ones(TJ_F32, TJ_SHAPE(3)), false));
    ck_assert_error(TJ_ERR_SHAPE, "dense1: inputs must have rank >= 2 (batch, ..., features), got (3,)");
    tj_module_free(d);
}
END_TEST

/* The guide: build the model, call it on dummy data before any training, print the output
 * and the weights the call created. */
START_TEST(guide_flow_calls_on_dummy_data_then_prints) {
    tj_seed(1);
    mlp self;
    tj_module *model = mlp_new("mlp", &self, 32, 10, TJ_ACT_SOFTMAX, 0.5);
    ck_assert_int_eq(tj_module_variables(model, 0, NULL), 0);
    char buf[4096];
    ck_assert_int_gt(tj_module_summary(model, buf, sizeof buf), 0);
    ck_assert_ptr_nonnull(strstr(buf, "dense1 (Dense)               ?                         0\n"));
    tj_tensor *y = tj_module_call(model, tj_ones(TJ_F32, TJ_SHAPE(2, 16)), false);   /* dummy data */
    ck_assert_ptr_nonnull(y);
    assert_shape(y, TJ_SHAPE(2, 10));
    for (int b = 0; b < 2; b++) {
        double s = 0;
        for (int j = 0; j < 10; j++) s += tu_get(y, b * 10 + j);
        assert_close(s, 1.0, 1e-6);
    }
    ck_assert_int_gt(tj_snprint(buf, sizeof buf, y), 0);
    ck_assert_ptr_nonnull(strstr(buf, "shape=(2, 10), dtype=float32"));
    tj_tensor *w[4];
    ck_assert_int_eq(tj_module_variables(model, 4, w), 4);
    const char *names[] = {"dense1/kernel", "dense1/bias", "dense2/kernel", "dense2/bias"};
    const char *shapes[] = {"shape=(16, 32)", "shape=(32,)", "shape=(32, 10)", "shape=(10,)"};
    for (int i = 0; i < 4; i++) {
        ck_assert_str_eq(tj_variable_name(w[i]), names[i]);
        int n = tj_snprint(NULL, 0, w[i]);             /* the guide prints every weight */
        ck_assert_int_gt(n, 0);
        char *text = malloc((size_t)n + 1);
        ck_assert_int_eq(tj_snprint(text, (size_t)n + 1, w[i]), n);
        ck_assert_msg(strstr(text, shapes[i]) != NULL, "%s lacks %s", names[i], shapes[i]);
        free(text);
    }
    ck_assert_int_eq(tj_module_param_count(model), 16 * 32 + 32 + 32 * 10 + 10);
    ck_assert_int_gt(tj_module_summary(model, buf, sizeof buf), 0);
    ck_assert_ptr_nonnull(strstr(buf, "dense2 (Dense)               (None, 10)                330\n"));
    ck_assert_ptr_nonnull(strstr(buf, "Total params: 874\n"));
    tj_module_free(model);
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

/* ---- a generator made of downsample modules, inside a GAN-shaped root ----------------------- */

static tj_tensor *down_forward(tj_module *m, tj_tensor *x, bool training) {
    x = tj_module_call(tj_module_child(m, "conv"), x, training);
    return tj_module_call(tj_module_child(m, "drop"), x, training);
}

static tj_module *downsample(const char *name, int64_t units) {
    tj_module *m = tj_module_new(name, down_forward, NULL);
    tj_module_add(m, tj_dense("conv", units, TJ_ACT_RELU, true));
    tj_module_add(m, tj_dropout_layer("drop", 0.25));
    return m;
}

typedef struct { tj_tensor *scale; } gen_state;

static tj_tensor *gen_forward(tj_module *m, tj_tensor *x, bool training) {
    gen_state *g = tj_module_user(m);
    x = tj_mul(x, g->scale);
    x = tj_module_call(tj_module_child(m, "down1"), x, training);
    return tj_module_call(tj_module_child(m, "down2"), x, training);
}

static tj_tensor *gan_forward(tj_module *m, tj_tensor *x, bool training) {
    return tj_module_call(tj_module_child(m, "disc"), tj_module_call(tj_module_child(m, "gen"), x, training),
                          training);
}

static tj_module *generator(gen_state *g) {
    tj_module *gen = tj_module_new("gen", gen_forward, g);
    g->scale = tj_module_variable(gen, "scale", tj_ones(TJ_F32, TJ_SHAPE(1)));
    tj_module_add(gen, downsample("down1", 4));
    tj_module_add(gen, downsample("down2", 2));
    return gen;
}

START_TEST(nested_model_variable_order_and_paths) {
    gen_state g;
    tj_module *gen = generator(&g);
    tj_tensor *x = randn(TJ_SHAPE(3, 6), TJ_F32);
    /* built on its own first: paths from gen */
    ck_assert_ptr_nonnull(tj_module_call(gen, x, true));
    tj_tensor *v[8];
    ck_assert_int_eq(tj_module_variables(gen, 8, v), 5);
    ck_assert_str_eq(tj_variable_name(v[0]), "scale");
    ck_assert_str_eq(tj_variable_name(v[1]), "down1/conv/kernel");
    /* then nested: every path now starts at the new root */
    tj_module *gan = tj_module_new("gan", gan_forward, NULL);
    ck_assert_ptr_eq(tj_module_add(gan, gen), gen);
    tj_module_add(gan, tj_dense("disc", 1, TJ_ACT_LINEAR, true));
    ck_assert_int_eq(tj_module_variables(gan, 8, v), 5);
    ck_assert_ptr_nonnull(tj_module_call(gan, x, false));
    const char *want[] = {"gen/scale", "gen/down1/conv/kernel", "gen/down1/conv/bias", "gen/down2/conv/kernel",
                          "gen/down2/conv/bias", "disc/kernel", "disc/bias"};
    const tj_shape shapes[] = {TJ_SHAPE(1), TJ_SHAPE(6, 4), TJ_SHAPE(4), TJ_SHAPE(4, 2), TJ_SHAPE(2),
                               TJ_SHAPE(2, 1), TJ_SHAPE(1)};
    ck_assert_int_eq(tj_module_variables(gan, 8, v), 7);
    for (int i = 0; i < 7; i++) {
        ck_assert_str_eq(tj_variable_name(v[i]), want[i]);
        assert_shape(v[i], shapes[i]);
    }
    ck_assert_ptr_eq(v[0], g.scale);
    /* a small cap fills what fits and still counts all */
    tj_tensor *two[2];
    ck_assert_int_eq(tj_module_variables(gan, 2, two), 7);
    ck_assert_ptr_eq(two[1], v[1]);
    /* the same order on every call */
    tj_tensor *again[8];
    tj_module_variables(gan, 8, again);
    ck_assert(memcmp(v, again, sizeof(tj_tensor *) * 7) == 0);
    ck_assert_ptr_eq(tj_module_child(tj_module_child(gan, "gen"), "down2"), tj_module_child(gen, "down2"));
    ck_assert_str_eq(tj_module_name(tj_module_child(tj_module_child(gen, "down1"), "conv")), "conv");
    ck_assert_ptr_eq(tj_module_user(gen), &g);
    /* parameter counts, whole and per module */
    ck_assert_int_eq(tj_module_param_count(gan), 1 + (24 + 4) + (8 + 2) + (2 + 1));
    ck_assert_int_eq(tj_module_param_count(gen), 1 + 28 + 10);
    ck_assert_int_eq(tj_module_param_count(tj_module_child(gen, "down2")), 10);
    ck_assert_int_eq(tj_module_param_count(tj_module_child(tj_module_child(gen, "down1"), "drop")), 0);
    /* a child freed on its own leaves its parent */
    tj_module_free(tj_module_child(gen, "down2"));
    ck_assert_int_eq(tj_module_variables(gan, 8, v), 5);
    ck_assert_str_eq(tj_variable_name(v[3]), "disc/kernel");
    tj_module_free(gan);
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

START_TEST(auto_names_are_made_unique) {
    tj_module *layers[3] = {tj_dense(NULL, 3, TJ_ACT_RELU, true), tj_dense(NULL, 2, TJ_ACT_LINEAR, true),
                            tj_dropout_layer(NULL, 0.1)};
    tj_module *seq = tj_sequential(NULL, 3, layers);
    ck_assert_str_eq(tj_module_name(seq), "sequential");
    ck_assert_str_eq(tj_module_name(layers[0]), "dense");
    ck_assert_str_eq(tj_module_name(layers[1]), "dense_1");
    ck_assert_str_eq(tj_module_name(layers[2]), "dropout");
    ck_assert_ptr_nonnull(tj_module_call(seq, tj_ones(TJ_F32, TJ_SHAPE(4, 5)), false));
    tj_tensor *v[4];
    ck_assert_int_eq(tj_module_variables(seq, 4, v), 4);
    ck_assert_str_eq(tj_variable_name(v[2]), "dense_1/kernel");
    tj_module_free(seq);
}
END_TEST

/* ---- summary ------------------------------------------------------------------------------ */

static const char golden_summary[] =
    "Model: \"mlp\"\n"
    "_________________________________________________________________\n"
    "Layer (type)                 Output Shape              Param #\n"
    "=================================================================\n"
    "dense1 (Dense)               (None, 8)                 40\n"
    "_________________________________________________________________\n"
    "drop (Dropout)               (None, 8)                 0\n"
    "_________________________________________________________________\n"
    "dense2 (Dense)               (None, 1)                 9\n"
    "=================================================================\n"
    "Total params: 49\n"
    "Trainable params: 49\n"
    "Non-trainable params: 0\n"
    "_________________________________________________________________\n";

START_TEST(summary_is_keras_text) {
    mlp self;
    tj_module *m = mlp_new("mlp", &self, 8, 1, TJ_ACT_LINEAR, 0.5);
    char buf[2048];
    int n = tj_module_summary(m, buf, sizeof buf);
    ck_assert_int_eq(n, (int)strlen(buf));
    ck_assert_ptr_nonnull(strstr(buf, "drop (Dropout)               ?                         0\n"));
    ck_assert_ptr_nonnull(strstr(buf, "Total params: 0\n"));
    tj_module_call(m, tj_ones(TJ_F32, TJ_SHAPE(5, 4)), true);
    n = tj_module_summary(m, buf, sizeof buf);
    ck_assert_str_eq(buf, golden_summary);
    ck_assert_int_eq(n, (int)strlen(golden_summary));
    /* snprintf semantics: the length without a buffer; a short buffer holds a prefix */
    ck_assert_int_eq(tj_module_summary(m, NULL, 0), n);
    char small[20];
    ck_assert_int_eq(tj_module_summary(m, small, sizeof small), n);
    ck_assert_str_eq(small, "Model: \"mlp\"\n______");
    tj_module_free(m);
}
END_TEST

START_TEST(summary_of_a_larger_sequential) {
    tj_module *layers[5] = {tj_embedding("emb", 1000, 16), tj_flatten("flat"), tj_dense("hidden", 1000, TJ_ACT_TANH, true),
                            tj_reshape_layer("grid", TJ_SHAPE(10, -1)), tj_activation_layer("probs", TJ_ACT_SOFTMAX)};
    tj_module *seq = tj_sequential("a_sequential_model_with_a_long_name", 5, layers);
    tj_tensor *ids = tj_tensor_from(TJ_I32, TJ_SHAPE(2, 5), (int32_t[]){1, 2, 3, 4, 5, 999, 0, 0, 7, 8});
    tj_tensor *y = tj_module_call(seq, ids, false);
    assert_shape(y, TJ_SHAPE(2, 10, 100));
    char buf[4096];
    tj_module_summary(seq, buf, sizeof buf);
    ck_assert_ptr_nonnull(strstr(buf, "Model: \"a_sequential_model_with_a_long_name\"\n"));
    ck_assert_ptr_nonnull(strstr(buf, "emb (Embedding)              (None, 5, 16)             16000\n"));
    ck_assert_ptr_nonnull(strstr(buf, "flat (Flatten)               (None, 80)                0\n"));
    ck_assert_ptr_nonnull(strstr(buf, "grid (Reshape)               (None, 10, 100)           0\n"));
    ck_assert_ptr_nonnull(strstr(buf, "probs (Activation)           (None, 10, 100)           0\n"));
    ck_assert_ptr_nonnull(strstr(buf, "Total params: 97,000\n"));
    ck_assert_ptr_nonnull(strstr(buf, "Trainable params: 97,000\n"));
    /* a lone layer is its own row; a long name is cut at its column as Keras does */
    tj_module *d = tj_dense("a_dense_layer_with_a_long_name", 3, TJ_ACT_LINEAR, true);
    tj_module_summary(d, buf, sizeof buf);
    ck_assert_ptr_nonnull(strstr(buf, "\na_dense_layer_with_a_long_na ?                         0\n"));
    tj_module_free(d);
    tj_module_free(seq);
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

/* ---- other layers ---------------------------------------------------------------------------- */

START_TEST(embedding_looks_up_rows) {
    tj_seed(3);
    tj_module *e = tj_embedding("emb", 6, 4);
    tj_tensor *ids = tj_tensor_from(TJ_I32, TJ_SHAPE(2, 3), (int32_t[]){0, 5, 2, 2, 2, 1});
    tj_tape *tape = tj_tape_begin(0);
    tj_tensor *y = tj_module_call(e, ids, false);
    assert_shape(y, TJ_SHAPE(2, 3, 4));
    tj_tensor *table, *g;
    ck_assert_int_eq(tj_module_variables(e, 1, &table), 1);
    ck_assert_str_eq(tj_variable_name(table), "embeddings");
    assert_shape(table, TJ_SHAPE(6, 4));
    for (int i = 0; i < 24; i++) ck_assert(fabs(tu_get(table, i)) <= 0.05);
    const int32_t id[6] = {0, 5, 2, 2, 2, 1};
    for (int k = 0; k < 6; k++)
        for (int j = 0; j < 4; j++) ck_assert(tu_get(y, k * 4 + j) == tu_get(table, id[k] * 4 + j));
    /* d sum(y) / d table counts each id */
    ck_assert_int_eq(tj_tape_gradient(tape, y, 1, &table, &g), 0);
    tj_tape_free(tape);
    const double count[6] = {1, 1, 3, 0, 0, 1};
    for (int r = 0; r < 6; r++) ck_assert(tu_get(g, r * 4) == count[r]);
    ck_assert_ptr_null(tj_module_call(e, tj_tensor_from(TJ_I32, TJ_SHAPE(1, 2), (int32_t[]){3, 6}), false));
    ck_assert_error(TJ_ERR_VALUE, "gather: index 6 (element 1 of indices) is out of range [0, 6)");
    ck_assert_ptr_null(tj_module_call(e, tj_ones(TJ_F32, TJ_SHAPE(1, 2)), false));
    ck_assert_error(TJ_ERR_DTYPE, "emb: ids must be int32, got float32");
    tj_module_free(e);
}
END_TEST

START_TEST(dropout_flatten_reshape_activation_layers) {
    tj_seed(8);
    tj_module *drop = tj_dropout_layer("drop", 0.5);
    tj_tensor *x = tj_ones(TJ_F32, TJ_SHAPE(100, 40));
    ck_assert_ptr_eq(tj_module_call(drop, x, false), x);       /* identity unless training */
    tj_tensor *y = tj_module_call(drop, x, true);
    int zeros = 0;
    for (int i = 0; i < 4000; i++) {
        double v = tu_get(y, i);
        ck_assert(v == 0.0 || v == 2.0);
        zeros += v == 0.0;
    }
    ck_assert_msg(zeros > 1800 && zeros < 2200, "%d zeros of 4000", zeros);
    tj_module_free(drop);

    tj_module *flat = tj_flatten("flat"), *grid = tj_reshape_layer("grid", TJ_SHAPE(3, -1));
    tj_tensor *z = randn(TJ_SHAPE(2, 3, 4), TJ_F32);
    tj_tensor *f = tj_module_call(flat, z, false);
    assert_shape(f, TJ_SHAPE(2, 12));
    assert_shape(tj_module_call(flat, tj_ones(TJ_F32, TJ_SHAPE(5)), false), TJ_SHAPE(5, 1));
    tj_tensor *r = tj_module_call(grid, f, false);
    assert_shape(r, TJ_SHAPE(2, 3, 4));
    ck_assert(memcmp(tj_tensor_data(r), tj_tensor_data(z), sizeof(float) * 24) == 0);
    ck_assert_ptr_null(tj_module_call(grid, tj_ones(TJ_F32, TJ_SHAPE(2, 10)), false));
    ck_assert_error(TJ_ERR_SHAPE, "grid: cannot reshape (2, 10) to (None, 3, -1)");
    ck_assert_ptr_null(tj_module_call(flat, tj_scalar(1), false));
    ck_assert_error(TJ_ERR_SHAPE, "flat: inputs must have a batch dimension, got a scalar");
    tj_module *fixed = tj_reshape_layer("fixed", TJ_SHAPE(4));
    ck_assert_ptr_null(tj_module_call(fixed, f, false));
    ck_assert_error(TJ_ERR_SHAPE, "fixed: cannot reshape (2, 12) to (None, 4)");
    tj_module_free(fixed);
    tj_module_free(flat);
    tj_module_free(grid);

    tj_module *act = tj_activation_layer("act", TJ_ACT_TANH);
    tj_tensor *t = tj_module_call(act, z, false);
    for (int i = 0; i < 24; i++) assert_close(tu_get(t, i), tanh(tu_get(z, i)), 1e-6);
    tj_module_free(act);
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

/* ---- losses against double references -------------------------------------------------------- */

static double mse_ref(tj_tensor *p, tj_tensor *t, tj_reduction r) {
    int64_t n = tj_tensor_numel(p);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (tu_get(p, i) - tu_get(t, i)) * (tu_get(p, i) - tu_get(t, i));
    return r == TJ_REDUCTION_MEAN ? s / (double)n : s;
}

/* -sum(onehot * log_softmax(logits)); labels (batch,) when onehot is NULL */
static double ce_ref(tj_tensor *logits, tj_tensor *onehot, tj_tensor *labels, tj_reduction r) {
    tj_shape s = tj_tensor_shape(logits);
    int64_t B = s.dim[0], C = s.dim[1];
    double total = 0;
    for (int64_t b = 0; b < B; b++) {
        double m = -INFINITY, z = 0;
        for (int64_t c = 0; c < C; c++) m = fmax(m, tu_get(logits, b * C + c));
        for (int64_t c = 0; c < C; c++) z += exp(tu_get(logits, b * C + c) - m);
        for (int64_t c = 0; c < C; c++) {
            double w = onehot ? tu_get(onehot, b * C + c) : (double)(tu_get(labels, b) == c);
            total -= w * (tu_get(logits, b * C + c) - m - log(z));
        }
    }
    return r == TJ_REDUCTION_MEAN ? total / (double)B : total;
}

static double bce_ref(tj_tensor *x, tj_tensor *z, tj_reduction r) {
    int64_t n = tj_tensor_numel(x);
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double xi = tu_get(x, i), zi = tu_get(z, i);
        s += fmax(xi, 0) - xi * zi + log1p(exp(-fabs(xi)));
    }
    return r == TJ_REDUCTION_MEAN ? s / (double)n : s;
}

static tj_tensor *onehot_of(const int32_t *labels, int B, int C, tj_dtype dt) {
    double *v = calloc((size_t)(B * C), sizeof(double));
    for (int b = 0; b < B; b++) v[b * C + labels[b]] = 1;
    tj_tensor *t = tj_cast(tj_tensor_from(TJ_F64, TJ_SHAPE(B, C), v), dt);
    free(v);
    return t;
}

START_TEST(losses_match_double_references) {
    const tj_dtype dts[2] = {TJ_F32, TJ_F64};
    for (int k = 0; k < 2; k++)
        for (int r = 0; r < 2; r++) {
            tj_dtype dt = dts[k];
            tj_reduction red = r ? TJ_REDUCTION_SUM : TJ_REDUCTION_MEAN;
            double tol = dt == TJ_F32 ? 2e-6 : 1e-13;
            tj_seed(20 + (uint64_t)(2 * k + r));
            tj_tensor *p = randn(TJ_SHAPE(7, 3), dt), *t = randn(TJ_SHAPE(7, 3), dt);
            tj_tensor *l = tj_loss_mse(p, t, red);
            assert_shape(l, TJ_SHAPE());
            ck_assert_int_eq(tj_tensor_dtype(l), dt);
            assert_close(tj_item(l), mse_ref(p, t, red), tol);

            tj_tensor *logits = tj_mul(randn(TJ_SHAPE(7, 5), dt), tj_scalar(3));
            const int32_t lab[7] = {0, 4, 2, 2, 1, 3, 0};
            tj_tensor *labels = tj_tensor_from(TJ_I32, TJ_SHAPE(7), lab), *oh = onehot_of(lab, 7, 5, dt);
            double want = ce_ref(logits, NULL, labels, red);
            assert_close(tj_item(tj_loss_sparse_softmax_ce(logits, labels, red)), want, tol);
            assert_close(tj_item(tj_loss_softmax_ce(logits, oh, red)), want, tol);
            tj_tensor *soft = tj_softmax(randn(TJ_SHAPE(7, 5), dt), 1);   /* soft targets too */
            assert_close(tj_item(tj_loss_softmax_ce(logits, soft, red)), ce_ref(logits, soft, NULL, red), tol);

            tj_tensor *x = tj_mul(randn(TJ_SHAPE(4, 6), dt), tj_scalar(4));
            tj_tensor *z = tj_cast(tj_rand_uniform(TJ_SHAPE(4, 6), 0, 1), dt);
            assert_close(tj_item(tj_loss_bce_logits(x, z, red)), bce_ref(x, z, red), tol);
        }
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

static bool all_finite(tj_tensor *t) {
    for (int64_t i = 0; i < tj_tensor_numel(t); i++)
        if (!isfinite(tu_get(t, i))) return false;
    return true;
}

START_TEST(losses_are_stable_for_extreme_logits) {
    tj_tensor *logits = tj_tensor_from(TJ_F32, TJ_SHAPE(3, 3), (float[]){1000, 0, -1000, 0, 1000, 0, 1000, 1000, 1000});
    tj_tensor *labels = tj_tensor_from(TJ_I32, TJ_SHAPE(3), (int32_t[]){0, 0, 2});
    tj_tensor *oh = onehot_of((const int32_t[]){0, 0, 2}, 3, 3, TJ_F32);
    tj_tensor *g;
    /* row 0: ~0; row 1: 1000; row 2: log 3 */
    double want = 1000 + log(3.0);
    for (int sparse = 0; sparse < 2; sparse++) {
        tj_tape *tape = tj_tape_begin(0);
        tj_tape_watch(tape, logits);
        tj_tensor *l = sparse ? tj_loss_sparse_softmax_ce(logits, labels, TJ_REDUCTION_SUM)
                              : tj_loss_softmax_ce(logits, oh, TJ_REDUCTION_SUM);
        assert_close(tj_item(l), want, 1e-6);
        ck_assert_int_eq(tj_tape_gradient(tape, l, 1, &logits, &g), 0);
        tj_tape_free(tape);
        ck_assert(all_finite(g));
        assert_close(tu_get(g, 3), -1.0, 1e-6);      /* softmax - onehot: row 1 */
        assert_close(tu_get(g, 4), 1.0, 1e-6);
    }
    tj_tensor *x = tj_tensor_from(TJ_F32, TJ_SHAPE(4), (float[]){100, -100, 100, -100});
    tj_tensor *z = tj_tensor_from(TJ_F32, TJ_SHAPE(4), (float[]){1, 1, 0, 0});
    tj_tape *tape = tj_tape_begin(0);
    tj_tape_watch(tape, x);
    tj_tensor *l = tj_loss_bce_logits(x, z, TJ_REDUCTION_MEAN);
    ck_assert(all_finite(l));
    assert_close(tj_item(l), 50.0, 1e-6);            /* (0 + 100 + 100 + 0) / 4 */
    ck_assert_int_eq(tj_tape_gradient(tape, l, 1, &x, &g), 0);
    tj_tape_free(tape);
    ck_assert(all_finite(g));
    const double gw[4] = {0, -0.25, 0.25, 0};         /* (sigmoid(x) - z) / 4 */
    for (int i = 0; i < 4; i++) assert_close(tu_get(g, i), gw[i], 1e-6);
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

/* ---- gradients of a model's loss against finite differences (f64) ---------------------------- */

enum { L_MSE, L_CE, L_SPARSE, L_BCE };

typedef struct { tj_module *m; tj_tensor *x, *target, *labels; int loss; tj_reduction r; } fd_problem;

static tj_tensor *fd_loss(const fd_problem *p) {
    tj_tensor *y = tj_module_call(p->m, p->x, false);
    switch (p->loss) {
    case L_MSE: return tj_loss_mse(y, p->target, p->r);
    case L_CE: return tj_loss_softmax_ce(y, p->target, p->r);
    case L_SPARSE: return tj_loss_sparse_softmax_ce(y, p->labels, p->r);
    case L_BCE: return tj_loss_bce_logits(y, p->target, p->r);
    }
    return NULL;
}

static double loss_at(const fd_problem *p) {
    tj_scope_begin();
    double v = tj_item(fd_loss(p));
    tj_scope_end();
    return v;
}

static void set_element(tj_tensor *v, int64_t i, double value) {
    tj_scope_begin();
    int64_t n = tj_tensor_numel(v);
    double *buf = malloc(sizeof(double) * (size_t)n);
    memcpy(buf, tj_tensor_data(v), sizeof(double) * (size_t)n);
    buf[i] = value;
    ck_assert_int_eq(tj_assign(v, tj_tensor_from(TJ_F64, tj_tensor_shape(v), buf)), 0);
    free(buf);
    tj_scope_end();
}

START_TEST(model_gradients_match_finite_differences) {
    const char *names[4] = {"mse", "softmax_ce", "sparse_softmax_ce", "bce_logits"};
    for (int loss = 0; loss < 4; loss++)
        for (int r = 0; r < 2; r++) {
            tj_scope_begin();
            tj_seed(100 + (uint64_t)(2 * loss + r));
            enum { B = 6, I = 4, H = 5, C = 3 };
            mlp self;
            fd_problem p = {mlp_new("m", &self, H, C, TJ_ACT_LINEAR, 0), randn(TJ_SHAPE(B, I), TJ_F64), NULL, NULL,
                            loss, r ? TJ_REDUCTION_SUM : TJ_REDUCTION_MEAN};
            const int32_t lab[B] = {0, 2, 1, 1, 0, 2};
            p.labels = tj_tensor_from(TJ_I32, TJ_SHAPE(B), lab);
            p.target = loss == L_MSE ? randn(TJ_SHAPE(B, C), TJ_F64)
                     : loss == L_CE  ? tj_softmax(randn(TJ_SHAPE(B, C), TJ_F64), 1)
                                     : tj_cast(tj_rand_uniform(TJ_SHAPE(B, C), 0, 1), TJ_F64);
            tj_module_call(p.m, p.x, false);                                 /* build in f64 */
            tj_tensor *vars[4], *grads[4];
            ck_assert_int_eq(tj_module_variables(p.m, 4, vars), 4);
            for (int i = 0; i < 4; i++) ck_assert_int_eq(tj_tensor_dtype(vars[i]), TJ_F64);
            tj_assign(vars[1], randn(TJ_SHAPE(H), TJ_F64));                  /* nonzero biases */
            tj_assign(vars[3], randn(TJ_SHAPE(C), TJ_F64));
            tj_tape *tape = tj_tape_begin(0);
            tj_tensor *l = fd_loss(&p);
            ck_assert_int_eq(tj_tape_gradient(tape, l, 4, vars, grads), 0);
            tj_tape_free(tape);
            for (int k = 0; k < 4; k++)
                for (int64_t i = 0; i < tj_tensor_numel(vars[k]); i++) {
                    double v0 = tu_get(vars[k], i);
                    set_element(vars[k], i, v0 + EPS);
                    double up = loss_at(&p);
                    set_element(vars[k], i, v0 - EPS);
                    double down = loss_at(&p);
                    set_element(vars[k], i, v0);
                    double num = (up - down) / (2 * EPS), ana = tu_get(grads[k], i);
                    ck_assert_msg(fabs(ana - num) <= ATOL + RTOL * fabs(num), "%s %s: d/d %s[%lld]: %.9g tape, %.9g numeric",
                                  names[loss], r ? "sum" : "mean", tj_variable_name(vars[k]), (long long)i, ana, num);
                }
            tj_module_free(p.m);
            tj_scope_end();
        }
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

/* ---- compiled training == eager training --------------------------------------------------- */

typedef struct { tj_module *m; } trainer;

/* one SGD step on mse(model(x), y); the model builds itself on the first (traced) call */
static int sgd_step(void *user, int n_in, tj_tensor *const *in, int n_out, tj_tensor **out) {
    trainer *t = user;
    (void)n_in; (void)n_out;
    tj_tape *tape = tj_tape_begin(0);
    tj_tensor *loss = tj_loss_mse(tj_module_call(t->m, in[0], true), in[1], TJ_REDUCTION_MEAN);
    tj_tensor *vars[8], *grads[8];
    int n = tj_module_variables(t->m, 8, vars);
    int rc = loss ? tj_tape_gradient(tape, loss, n, vars, grads) : tj_error_code();
    tj_tape_free(tape);
    for (int i = 0; rc == 0 && i < n; i++)
        rc = tj_assign(vars[i], tj_sub(vars[i], tj_mul(grads[i], tj_scalar(0.05))));
    out[0] = loss;
    return rc;
}

enum { STEPS = 20, NB = 8, NI = 5, NO = 2 };

/* Trains a fresh MLP (with dropout) for STEPS steps in mode, building it inside the first
 * call (so the initial draws happen while tracing); writes its losses and returns
 * its weights, concatenated (malloc'd). */
static float *train(tj_mode mode, float *losses, int64_t *nweights) {
    tj_set_mode(mode);
    tj_seed(77);
    tj_tensor *xs = randn(TJ_SHAPE(STEPS * NB, NI), TJ_F32);
    tj_tensor *ys = tj_tanh(tj_matmul(xs, randn(TJ_SHAPE(NI, NO), TJ_F32)));
    mlp self;
    trainer t = {mlp_new("m", &self, 16, NO, TJ_ACT_LINEAR, 0.2)};
    tj_function *f = tj_function_new("sgd_step", sgd_step, &t);
    for (int s = 0; s < STEPS; s++) {
        tj_scope_begin();
        tj_tensor *in[2] = {tj_slice(xs, (int64_t[]){s * NB, 0}, (int64_t[]){NB, -1}),
                            tj_slice(ys, (int64_t[]){s * NB, 0}, (int64_t[]){NB, -1})}, *loss;
        ck_assert_msg(tj_function_call(f, 2, in, 1, &loss) == 0, "step %d: %s", s, tj_last_error());
        losses[s] = (float)tj_item(loss);
#ifdef TJ_HAVE_JIT
        const char *want = mode == TJ_MODE_EAGER ? "eager" : s == 0 ? "traced"
                         : mode == TJ_MODE_JIT ? "compiled" : "checked";
#else
        const char *want = mode != TJ_MODE_EAGER && s == 0 ? "traced" : "eager";   /* no JIT: eager after */
#endif
        ck_assert_str_eq(tj_function_last_path(f), want);
        tj_scope_end();
    }
    tj_tensor *vars[4];
    ck_assert_int_eq(tj_module_variables(t.m, 4, vars), 4);
    int64_t n = 0;
    for (int i = 0; i < 4; i++) n += tj_tensor_numel(vars[i]);
    float *w = malloc(sizeof(float) * (size_t)n), *at = w;
    for (int i = 0; i < 4; i++) {
        memcpy(at, tj_tensor_data(vars[i]), sizeof(float) * (size_t)tj_tensor_numel(vars[i]));
        at += tj_tensor_numel(vars[i]);
    }
    *nweights = n;
    tj_function_free(f);
    tj_module_free(t.m);
    return w;
}

START_TEST(compiled_training_matches_eager_bit_for_bit) {
    float le[STEPS], lj[STEPS];
    int64_t ne, nj;
    float *we = train(TJ_MODE_EAGER, le, &ne);
    float *wj = train(TJ_MODE_JIT, lj, &nj);
    ck_assert_int_eq(ne, NI * 16 + 16 + 16 * NO + NO);
    ck_assert_int_eq(ne, nj);
    for (int s = 0; s < STEPS; s++)
        ck_assert_msg(memcmp(&le[s], &lj[s], sizeof(float)) == 0, "step %d: loss %.9g eager, %.9g compiled", s,
                      le[s], lj[s]);
    for (int64_t i = 0; i < ne; i++)
        ck_assert_msg(memcmp(&we[i], &wj[i], sizeof(float)) == 0, "weight %lld: %.9g eager, %.9g compiled",
                      (long long)i, we[i], wj[i]);
    ck_assert(le[STEPS - 1] < le[0]);                 /* and it learns */
    /* check mode runs each call both ways and compares every node: no difference */
    float lc[STEPS];
    int64_t nc;
    float *wc = train(TJ_MODE_CHECK, lc, &nc);
    ck_assert(memcmp(wc, we, sizeof(float) * (size_t)ne) == 0);
    free(we);
    free(wj);
    free(wc);
    ck_assert_int_eq(tj_error_code(), 0);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------------------ */

START_TEST(null_module_arguments_are_errors) {
    tj_tensor *x = tj_ones(TJ_F32, TJ_SHAPE(2, 2)), *v;
    ck_assert_ptr_null(tj_module_call(NULL, x, false));
    ck_assert_error(TJ_ERR_ARG, "module_call: module is NULL");
    ck_assert_ptr_null(tj_module_add(NULL, tj_dense("d", 1, TJ_ACT_LINEAR, true)));   /* the child is freed */
    ck_assert_error(TJ_ERR_ARG, "module_add: module is NULL (adding 'd')");
    tj_module *m = tj_module_new("m", NULL, NULL);
    ck_assert_ptr_null(tj_module_add(m, NULL));
    ck_assert_error(TJ_ERR_ARG, "module_add: child is NULL");
    ck_assert_int_eq(tj_module_variables(NULL, 0, NULL), -1);
    ck_assert_error(TJ_ERR_ARG, "module_variables: module is NULL");
    ck_assert_int_eq(tj_module_variables(m, 3, NULL), -1);
    ck_assert_error(TJ_ERR_ARG, "module_variables: cap is 3 and vars is NULL");
    ck_assert_int_eq(tj_module_param_count(NULL), -1);
    ck_assert_error(TJ_ERR_ARG, "module_param_count: module is NULL");
    ck_assert_int_eq(tj_module_summary(NULL, NULL, 0), -1);
    ck_assert_error(TJ_ERR_ARG, "module_summary: module is NULL");
    ck_assert_int_eq(tj_module_summary(m, NULL, 10), -1);
    ck_assert_error(TJ_ERR_ARG, "module_summary: buf is NULL but size is 10");
    ck_assert_ptr_null(tj_module_name(NULL));
    ck_assert_error(TJ_ERR_ARG, "module_name: module is NULL");
    ck_assert_ptr_null(tj_module_user(NULL));
    ck_assert_error(TJ_ERR_ARG, "module_user: module is NULL");
    ck_assert_ptr_null(tj_module_child(NULL, "x"));
    ck_assert_error(TJ_ERR_ARG, "module_child: module is NULL");
    ck_assert_ptr_null(tj_module_child(m, "x"));
    ck_assert_error(TJ_ERR_ARG, "module_child: 'm' has no child named 'x'");
    ck_assert_ptr_null(tj_module_variable(NULL, "w", x));
    ck_assert_error(TJ_ERR_ARG, "module_variable: module is NULL");
    ck_assert_ptr_null(tj_module_variable(m, NULL, x));
    ck_assert_error(TJ_ERR_ARG, "module_variable: variable name is NULL");
    ck_assert_ptr_null(tj_module_variable(m, "w", NULL));
    ck_assert_error(TJ_ERR_ARG, "module_variable: argument 3 is NULL");
    ck_assert_ptr_null(tj_module_call(m, x, false));
    ck_assert_error(TJ_ERR_ARG, "module_call: 'm' has no forward function");
    tj_module_print_summary(NULL);
    ck_assert_error(TJ_ERR_ARG, "module_summary: module is NULL");
    tj_module_free(NULL);                                 /* as free(NULL) */
    ck_assert_int_eq(tj_error_code(), 0);
    /* a NULL input keeps the first error, as ops do */
    tj_module *d = tj_dense("d", 2, TJ_ACT_LINEAR, true);
    ck_assert_ptr_null(tj_module_call(d, NULL, false));
    ck_assert_error(TJ_ERR_ARG, "d: argument 1 is NULL");
    ck_assert_ptr_null(tj_module_call(d, tj_matmul(x, tj_ones(TJ_F32, TJ_SHAPE(3, 1))), false));
    ck_assert_error(TJ_ERR_SHAPE, "matmul:");
    ck_assert_int_eq(tj_module_variables(d, 0, NULL), 0);
    tj_module_free(d);
    v = tj_module_variable(m, "w", x);
    ck_assert_str_eq(tj_variable_name(v), "w");
    tj_module_free(m);
}
END_TEST

START_TEST(names_must_be_unique_and_plain) {
    tj_module *m = tj_module_new("gen", NULL, NULL);
    ck_assert_ptr_nonnull(tj_module_add(m, tj_dense("down1", 2, TJ_ACT_LINEAR, true)));
    ck_assert_ptr_null(tj_module_add(m, tj_dense("down1", 3, TJ_ACT_LINEAR, true)));   /* freed */
    ck_assert_error(TJ_ERR_ARG, "module_add: 'gen' already has a child named 'down1'");
    ck_assert_int_eq(tj_module_param_count(m), 0);
    ck_assert_ptr_nonnull(tj_module_variable(m, "w", tj_ones(TJ_F32, TJ_SHAPE(2))));
    ck_assert_ptr_null(tj_module_variable(m, "w", tj_ones(TJ_F32, TJ_SHAPE(2))));
    ck_assert_error(TJ_ERR_ARG, "module_variable: 'gen' already has a variable named 'w'");
    ck_assert_ptr_null(tj_module_variable(m, "a/b", tj_ones(TJ_F32, TJ_SHAPE(2))));
    ck_assert_error(TJ_ERR_ARG, "module_variable: variable name 'a/b' contains '/'");
    ck_assert_ptr_null(tj_dense("a/b", 2, TJ_ACT_LINEAR, true));
    ck_assert_error(TJ_ERR_ARG, "dense: module name 'a/b' contains '/'");
    ck_assert_ptr_null(tj_module_new("", NULL, NULL));
    ck_assert_error(TJ_ERR_ARG, "module_new: module name is empty");
    /* a module has one parent, and no module contains itself; neither is taken */
    tj_module *child = tj_module_child(m, "down1"), *other = tj_module_new("other", NULL, NULL);
    ck_assert_ptr_null(tj_module_add(other, child));
    ck_assert_error(TJ_ERR_ARG, "module_add: 'down1' is already a child of 'gen'");
    ck_assert_ptr_null(tj_module_add(m, m));
    ck_assert_error(TJ_ERR_ARG, "module_add: 'gen' cannot be added to itself or its descendant 'gen'");
    tj_module_add(other, m);
    ck_assert_ptr_null(tj_module_add(m, other));
    ck_assert_error(TJ_ERR_ARG, "module_add: 'other' cannot be added to itself or its descendant 'gen'");
    ck_assert_str_eq(tj_module_name(tj_module_child(tj_module_child(other, "gen"), "down1")), "down1");
    /* a sequential takes its layers, also when one is refused */
    tj_module *layers[3] = {tj_dense("a", 1, TJ_ACT_LINEAR, true), NULL, tj_dense("a", 1, TJ_ACT_LINEAR, true)};
    ck_assert_ptr_null(tj_sequential("seq", 3, layers));
    ck_assert_error(TJ_ERR_ARG, "sequential: layer 1 is NULL");
    tj_module_free(other);
}
END_TEST

START_TEST(layer_arguments_are_checked) {
    ck_assert_ptr_null(tj_dropout_layer("drop", 1.0));
    ck_assert_error(TJ_ERR_ARG, "dropout_layer: rate 1 is outside [0, 1)");
    ck_assert_ptr_null(tj_dropout_layer("drop", -0.1));
    ck_assert_error(TJ_ERR_ARG, "dropout_layer: rate -0.1 is outside [0, 1)");
    ck_assert_ptr_null(tj_dropout_layer("drop", NAN));
    ck_assert_error(TJ_ERR_ARG, "dropout_layer: rate nan is outside [0, 1)");
    ck_assert_ptr_null(tj_dense("d", 0, TJ_ACT_LINEAR, true));
    ck_assert_error(TJ_ERR_ARG, "dense: units must be >= 1, got 0");
    ck_assert_ptr_null(tj_dense("d", 3, (tj_activation)9, true));
    ck_assert_error(TJ_ERR_ARG, "dense: activation 9 is not a tj_activation");
    ck_assert_ptr_null(tj_activation_layer("a", (tj_activation)-1));
    ck_assert_error(TJ_ERR_ARG, "activation_layer: activation -1 is not a tj_activation");
    ck_assert_ptr_null(tj_embedding("e", 0, 4));
    ck_assert_error(TJ_ERR_ARG, "embedding: vocab and dim must be >= 1, got 0 and 4");
    ck_assert_ptr_null(tj_reshape_layer("r", TJ_SHAPE(-1, -1)));
    ck_assert_error(TJ_ERR_ARG, "reshape_layer: bad target (-1, -1) (dims >= 0, one -1 at most)");
    ck_assert_ptr_null(tj_reshape_layer("r", TJ_SHAPE(1, 2, 3, 4, 5, 6, 7, 8)));
    ck_assert_error(TJ_ERR_ARG, "reshape_layer: target rank 8 is outside [0, 7]");
    ck_assert_ptr_null(tj_sequential("s", -1, NULL));
    ck_assert_error(TJ_ERR_ARG, "sequential: n is -1 and layers is NULL");
}
END_TEST

START_TEST(loss_arguments_are_checked) {
    tj_tensor *p = tj_ones(TJ_F32, TJ_SHAPE(10, 1)), *t = tj_ones(TJ_F32, TJ_SHAPE(10));
    ck_assert_ptr_null(tj_loss_mse(p, t, TJ_REDUCTION_MEAN));
    ck_assert_error(TJ_ERR_SHAPE, "loss_mse: pred (10, 1) and target (10,) differ");
    ck_assert_ptr_null(tj_loss_mse(p, tj_ones(TJ_F64, TJ_SHAPE(10, 1)), TJ_REDUCTION_MEAN));
    ck_assert_error(TJ_ERR_DTYPE, "loss_mse: pred is float32, target is float64");
    ck_assert_ptr_null(tj_loss_mse(tj_ones(TJ_I32, TJ_SHAPE(2)), tj_ones(TJ_I32, TJ_SHAPE(2)), TJ_REDUCTION_SUM));
    ck_assert_error(TJ_ERR_DTYPE, "loss_mse: pred dtype int32 is not supported (float32 or float64)");
    ck_assert_ptr_null(tj_loss_mse(p, p, (tj_reduction)5));
    ck_assert_error(TJ_ERR_ARG, "loss_mse: reduction 5 is not TJ_REDUCTION_MEAN or TJ_REDUCTION_SUM");
    ck_assert_ptr_null(tj_loss_mse(NULL, p, TJ_REDUCTION_MEAN));
    ck_assert_error(TJ_ERR_ARG, "loss_mse: argument 1 is NULL");

    tj_tensor *logits = tj_ones(TJ_F32, TJ_SHAPE(4, 3));
    ck_assert_ptr_null(tj_loss_softmax_ce(logits, tj_ones(TJ_F32, TJ_SHAPE(4, 2)), TJ_REDUCTION_MEAN));
    ck_assert_error(TJ_ERR_SHAPE, "loss_softmax_ce: logits (4, 3) and onehot (4, 2) differ");
    ck_assert_ptr_null(tj_loss_softmax_ce(tj_ones(TJ_F32, TJ_SHAPE(3)), tj_ones(TJ_F32, TJ_SHAPE(3)), TJ_REDUCTION_MEAN));
    ck_assert_error(TJ_ERR_SHAPE, "loss_softmax_ce: logits must be (batch, classes), got (3,)");
    ck_assert_ptr_null(tj_loss_softmax_ce(logits, tj_ones(TJ_F64, TJ_SHAPE(4, 3)), TJ_REDUCTION_MEAN));
    ck_assert_error(TJ_ERR_DTYPE, "loss_softmax_ce: logits is float32, onehot is float64");

    ck_assert_ptr_null(tj_loss_sparse_softmax_ce(logits, tj_tensor_from(TJ_I32, TJ_SHAPE(4), (int32_t[]){0, 1, 3, 2}),
                                                 TJ_REDUCTION_MEAN));
    ck_assert_error(TJ_ERR_VALUE, "loss_sparse_softmax_ce: label 3 (element 2 of labels) is out of range [0, 3)");
    ck_assert_ptr_null(tj_loss_sparse_softmax_ce(logits, tj_tensor_from(TJ_I32, TJ_SHAPE(4), (int32_t[]){0, -1, 0, 0}),
                                                 TJ_REDUCTION_MEAN));
    ck_assert_error(TJ_ERR_VALUE, "label -1 (element 1 of labels)");
    ck_assert_ptr_null(tj_loss_sparse_softmax_ce(logits, tj_zeros(TJ_F32, TJ_SHAPE(4)), TJ_REDUCTION_MEAN));
    ck_assert_error(TJ_ERR_DTYPE, "loss_sparse_softmax_ce: labels must be int32, got float32");
    ck_assert_ptr_null(tj_loss_sparse_softmax_ce(logits, tj_zeros(TJ_I32, TJ_SHAPE(4, 1)), TJ_REDUCTION_MEAN));
    ck_assert_error(TJ_ERR_SHAPE, "loss_sparse_softmax_ce: labels (4, 1) do not fit logits (4, 3): expected (4,)");
    ck_assert_ptr_null(tj_loss_sparse_softmax_ce(tj_zeros(TJ_I32, TJ_SHAPE(4, 3)), tj_zeros(TJ_I32, TJ_SHAPE(4)),
                                                 TJ_REDUCTION_MEAN));
    ck_assert_error(TJ_ERR_DTYPE, "loss_sparse_softmax_ce: logits dtype int32 is not supported");

    ck_assert_ptr_null(tj_loss_bce_logits(logits, tj_ones(TJ_F32, TJ_SHAPE(4, 1)), TJ_REDUCTION_SUM));
    ck_assert_error(TJ_ERR_SHAPE, "loss_bce_logits: logits (4, 3) and target (4, 1) differ");
    ck_assert_ptr_null(tj_loss_bce_logits(logits, logits, (tj_reduction)-1));
    ck_assert_error(TJ_ERR_ARG, "loss_bce_logits: reduction -1 is not");
    /* a chain: the first error stays */
    ck_assert_ptr_null(tj_loss_bce_logits(tj_matmul(logits, logits), logits, TJ_REDUCTION_SUM));
    ck_assert_error(TJ_ERR_SHAPE, "matmul:");
}
END_TEST

Suite *nn_suite(void) {
    Suite *s = suite_create("nn");
    TCase *c = tcase_create("layers");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_add_test(c, dense_forward_matches_double_reference);
    tcase_add_test(c, weights_depend_only_on_the_seed);
    tcase_add_test(c, glorot_uniform_bounds);
    tcase_add_test(c, dense_builds_lazily);
    tcase_add_test(c, dense_wrong_width_is_an_error);
    tcase_add_test(c, guide_flow_calls_on_dummy_data_then_prints);
    tcase_add_test(c, embedding_looks_up_rows);
    tcase_add_test(c, dropout_flatten_reshape_activation_layers);
    suite_add_tcase(s, c);

    c = tcase_create("modules");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_add_test(c, nested_model_variable_order_and_paths);
    tcase_add_test(c, auto_names_are_made_unique);
    tcase_add_test(c, summary_is_keras_text);
    tcase_add_test(c, summary_of_a_larger_sequential);
    suite_add_tcase(s, c);

    c = tcase_create("losses");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_add_test(c, losses_match_double_references);
    tcase_add_test(c, losses_are_stable_for_extreme_logits);
    tcase_add_test(c, model_gradients_match_finite_differences);
    suite_add_tcase(s, c);

    c = tcase_create("compiled");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_set_timeout(c, 60);
    tcase_add_test(c, compiled_training_matches_eager_bit_for_bit);
    suite_add_tcase(s, c);

    c = tcase_create("errors");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_add_test(c, null_module_arguments_are_errors);
    tcase_add_test(c, names_must_be_unique_and_plain);
    tcase_add_test(c, layer_arguments_are_checked);
    tcase_add_test(c, loss_arguments_are_checked);
    suite_add_tcase(s, c);
    return s;
}
