// train/version.c: the version and git commit bolt was built from (the Makefile passes
// them in; this file alone is recompiled when the commit changes).
#include "commands.h"

#ifndef BOLT_VERSION
#define BOLT_VERSION "0.1.0"
#endif
#ifndef BOLT_COMMIT
#define BOLT_COMMIT "unknown"
#endif

const char *bolt_version(void) {
    return BOLT_VERSION;
}

const char *bolt_commit(void) {
    return BOLT_COMMIT;
}
