/* profile.h: the Chrome-trace profiler (profile.c): complete events ("X") with a name,
 * a category and arguments, from any thread, written as a JSON trace that Perfetto and
 * chrome://tracing open. Started by env TJ_PROFILE=file.json (written at exit) or
 * tj_profile_start/stop. When off, tj_profile_on() is one load and a branch. */
#ifndef TJ_PROFILE_H
#define TJ_PROFILE_H

#include <stdbool.h>

bool tj_profile_on(void);
/* An event from t0 to t1 (tj_now_ms clock); args_json is a JSON object text or NULL. */
void tj_profile_event(const char *cat, const char *name, double t0_ms, double t1_ms, const char *args_json);

#endif
