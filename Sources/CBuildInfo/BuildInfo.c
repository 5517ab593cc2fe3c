#include "CBuildInfo.h"

#ifndef USERAPI_VERSION
#define USERAPI_VERSION "unknown"
#endif
#ifndef USERAPI_COMMIT
#define USERAPI_COMMIT "unknown"
#endif
#ifndef USERAPI_BUILT
#define USERAPI_BUILT "unknown"
#endif

const char *userapi_build_version(void) { return USERAPI_VERSION; }
const char *userapi_build_commit(void) { return USERAPI_COMMIT; }
const char *userapi_build_time(void) { return USERAPI_BUILT; }
