#ifndef USERAPI_CBUILDINFO_H
#define USERAPI_CBUILDINFO_H

/// Version, commit and build time stamped by Package.swift from the
/// USERAPI_VERSION / USERAPI_COMMIT / USERAPI_BUILT environment variables.
const char *userapi_build_version(void);
const char *userapi_build_commit(void);
const char *userapi_build_time(void);

#endif
