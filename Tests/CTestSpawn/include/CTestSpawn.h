#ifndef USERAPI_CTESTSPAWN_H
#define USERAPI_CTESTSPAWN_H

#include <sys/types.h>

/// Starts `path` with posix_spawn for the tests: stdin from /dev/null,
/// stdout and stderr onto the given descriptors, working directory `cwd`,
/// every other descriptor closed, signal mask and dispositions reset.
/// Returns 0 and sets `*pid`, or an errno value.
///
/// Why not Foundation's Process: a full test run once crashed the test runner
/// with SIGSEGV in libdispatch's manager thread (_dispatch_event_loop_drain)
/// while tests spawned servers in parallel through Process and read their
/// output with FileHandle.readabilityHandler (a libdispatch read source), a
/// known libdispatch race on Linux. This path uses neither: posix_spawn,
/// waitpid, and plain threads doing blocking reads.
/// The chdir and closefrom file actions are GNU extensions that Swift's Glibc
/// module does not export, hence this file.
int userapi_test_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                       const char *cwd, int stdout_fd, int stderr_fd);

#endif
