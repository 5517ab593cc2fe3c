// A program that crashes the way a Swift bug does (an out-of-range index traps),
// run by scripts/container/test_container.py inside the userapi image to prove that a
// real crash there prints a symbolicated report and ends the process with the
// signal, even as PID 1, so that the kubelet or podman restarts it.
@inline(never)
func crashProbeOutOfRange(_ index: Int) -> Int {
    let values = [1, 2, 3]
    return values[index]
}

print(crashProbeOutOfRange(CommandLine.arguments.count + 2))
