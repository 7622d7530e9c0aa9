/* optim.h: the optimizer object shared by optimizer.c (constructors, slots, apply) and
 * schedule.c (learning-rate schedules computed with ops from the step counter).
 * Internal: the public contract is the "optimizers" section of tapejit.h. */
#ifndef TJ_OPTIM_H
#define TJ_OPTIM_H

#include "ops/op.h"

typedef enum { TJ_OPT_SGD, TJ_OPT_ADAM, TJ_OPT_RMSPROP, TJ_OPT_ADAGRAD } tj_opt_kind;
typedef enum { TJ_SCHED_CONSTANT, TJ_SCHED_EXPONENTIAL, TJ_SCHED_COSINE } tj_sched_kind;

typedef struct tj_schedule {
    tj_sched_kind kind;
    double decay_steps;        /* > 0 */
    double rate;               /* exponential: lr * rate^(t / decay_steps) */
    bool   staircase;          /* exponential: floor the exponent */
    double alpha;              /* cosine: the fraction of lr left at the end, in [0, 1] */
} tj_schedule;

#define TJ_OPT_MAX_SLOTS 2

/* The slots of one tracked variable: variables of its shape and dtype. */
typedef struct tj_opt_entry {
    uint64_t   var_id;                     /* tensor id: never reused, kept across tj_assign */
    tj_tensor *slot[TJ_OPT_MAX_SLOTS];
} tj_opt_entry;

struct tj_optimizer {
    tj_opt_kind kind;
    const char *name;                      /* "sgd", "adam", ...: the prefix of messages */
    double lr;
    double momentum;                       /* sgd, rmsprop */
    bool   nesterov;                       /* sgd */
    double beta1, beta2;                   /* adam */
    double rho;                            /* rmsprop */
    double epsilon;                        /* adam, rmsprop, adagrad */
    double initial_accumulator;            /* adagrad */
    int    nslots;                         /* per tracked variable, in this order: */
    const char *slot_name[TJ_OPT_MAX_SLOTS];   /* "m", "v", "momentum", "rms", "accumulator" */
    double slot_init[TJ_OPT_MAX_SLOTS];
    tj_schedule sched;
    tj_tensor *step;                       /* f32 rank 0: applies so far */
    tj_tensor *lr_var;                     /* f32 rank 0: the base learning rate */
    tj_opt_entry *entries;                 /* tracked variables, in first-seen order */
    int n, cap;
};

/* The learning rate at step count t (f64, rank 0; the count before this apply's
 * increment, as Keras): the base rate times the schedule. NULL in gives NULL. */
tensor *tj_optim_lr(const tj_optimizer *o, tensor *t);
/* cos(pi * u) for u in [0, 1] from ops, in u's dtype (schedule.c documents the polynomial). */
tensor *tj_optim_cos_pi(tensor *u);

#endif
