/* profile.h: the Chrome-trace profiler (profile.c): complete events ("X") with a name,
 * a category and arguments, from any thread, written as a JSON trace that Perfetto and
 * chrome://tracing open. Started by env TJ_PROFILE=file.json (written at exit) or
 * tj_profile_start/stop. When off, tj_profile_on() is one relaxed load and a branch. */
#ifndef TJ_PROFILE_H
#define TJ_PROFILE_H

#include "core.h"

#include <stdatomic.h>
#include <stdbool.h>

extern atomic_bool tj_profile_running;   /* written by profile.c only */

static inline bool tj_profile_on(void) {
    return atomic_load_explicit(&tj_profile_running, memory_order_relaxed);
}
/* An event from t0 to t1 (tj_now_ms clock); args_json is a JSON object text or NULL.
 * Strings are copied. Never fails: an event that does not fit is counted as dropped. */
void tj_profile_event(const char *cat, const char *name, double t0_ms, double t1_ms, const char *args_json);

/* The eager-op hooks, called only when tj_profile_on(). tj_tensor_new stamps its new
 * tensor (an op allocates its output right before its kernel runs); tj_record then emits
 * the op as an event "op" from that stamp to now, with input and output shapes and dtypes.
 * An output that was not stamped (a view: reshape, stop_gradient) starts now. */
void tj_profile_op_begin(const tensor *out);
void tj_profile_op(const char *name, int nin, tensor *const *in, const tensor *out);

#endif
