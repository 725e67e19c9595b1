// dist/dist.c: single-process job layout (see dist.h).
#include <stdlib.h>

#include "../core/util.h"
#include "dist.h"

// The world size a launcher announced through its environment, or 1.
static int launcher_world_size(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "WORLD_SIZE"};
    for (int i = 0; i < 3; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 1) return atoi(v);
    }
    return 1;
}

Dist dist_init(void) {
    int world = launcher_world_size();
    check(world == 1,
          "started as one of %d processes, but this build of bolt trains on one process only "
          "(data and sequence parallelism are not built in yet)",
          world);
    return (Dist){.rank = 0, .world = 1};
}
