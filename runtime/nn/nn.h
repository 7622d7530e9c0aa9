/* nn.h: what module.c and layers.c share: the module struct (a tree of named modules,
 * each owning its variables and children) and the weight initialiser that builds a
 * layer's variables outside any trace or tape, as tf.init_scope does.
 * Variable names are paths from the root ("gen/down1/conv/kernel") and are kept so:
 * a variable is named when created and its subtree is renamed when a module is added. */
#ifndef TJ_NN_H
#define TJ_NN_H

#include "core/core.h"

typedef enum {
    NN_CUSTOM, NN_SEQUENTIAL, NN_DENSE, NN_DROPOUT, NN_EMBEDDING, NN_ACTIVATION, NN_FLATTEN, NN_RESHAPE
} nn_kind;

typedef struct nn_var { char *name; tj_tensor *h; } nn_var;   /* name: local, h: the variable */

struct tj_module {
    char         *name;
    bool          auto_name;        /* made from the type: renamed "dense_1" on a clash */
    nn_kind       kind;
    tj_forward_fn forward;
    void         *user;
    tj_module    *parent;
    tj_module   **child;
    int           nchild, capchild;
    nn_var       *var;
    int           nvar, capvar;
    bool          called;           /* out_shape is the last call's result shape */
    tj_shape      out_shape;
    union {                         /* the built-in layers' configuration */
        struct { int64_t units, in; tj_activation act; bool use_bias, built; tj_dtype dt;
                 tj_tensor *kernel, *bias; } dense;
        struct { double rate; } dropout;
        struct { int64_t vocab, dim; tj_tensor *table; } emb;
        struct { tj_activation act; } act;
        struct { tj_shape target; } reshape;
    } u;
};

/* A module of the given kind; NULL name gives default_name, renamed on a clash. */
tj_module *tj_nn_module_new(nn_kind kind, const char *name, const char *default_name, const char *op,
                            tj_forward_fn forward, void *user);
/* Variable name of m: uniform [lo, hi) drawn in f32 and cast to dt, or zeros when lo == hi.
 * Made outside any trace and tape, so a compiled step does not redraw it. */
tj_tensor *tj_nn_weight(tj_module *m, const char *name, tj_shape shape, tj_dtype dt, double lo, double hi);
const char *tj_nn_kind_name(nn_kind kind);   /* "Dense", ... (the summary's type column) */
bool tj_nn_activation_valid(tj_activation act);
tj_tensor *tj_nn_activate(tj_tensor *x, tj_activation act);

#endif
