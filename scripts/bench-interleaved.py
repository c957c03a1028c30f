#!/usr/bin/env python3
"""Wall time of several commands, measured round-robin: round i runs every command once, in turn, so that a
drift of the machine (a noisy neighbour on a shared VM, a CPU's frequency) reaches every command alike. hyperfine
runs each command's rounds back to back; on this 2-core VM its consecutive batches drifted by more than the
differences measured (docs/benchmarks.md "Networked start, third round").

Between two commands the harness pauses `--pause-ms` (not measured): what a command leaves running after it
exits (cagent's detached `cagent-teardown`, the kernel's deferred work) then reaches neither the next command
nor the next round. A start right after another session's end is measured apart (docs/benchmarks.md).

Usage: bench-interleaved.py --rounds N --warmup W NAME=COMMAND ...  (the first command is the ratios' reference)
Each command is split as a shell would (shlex) and spawned directly, stdin, stdout and stderr on /dev/null; a
command that fails stops the run. Prints median, p10 and p90 per command and the ratio of medians to the
first; `--json FILE` writes the times.
"""
import argparse, json, os, shlex, statistics, sys, time

def spawn_and_wait(command, null):
    argv = shlex.split(command)
    start = time.perf_counter_ns()
    pid = os.posix_spawnp(argv[0], argv, os.environ,
                          file_actions=[(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1),
                                        (os.POSIX_SPAWN_DUP2, null, 2)])
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter_ns() - start
    if status != 0:
        sys.exit(f"bench-interleaved: `{command}` failed (wait status {status})")
    return elapsed / 1e6

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--pause-ms", type=float, default=50)
    parser.add_argument("--json")
    parser.add_argument("commands", nargs="+")
    args = parser.parse_args()
    named = [c.split("=", 1) for c in args.commands]
    if any(len(n) != 2 for n in named):
        sys.exit("bench-interleaved: give each command as NAME=COMMAND")
    null = os.open("/dev/null", os.O_RDWR)
    times = {name: [] for name, _ in named}
    for round_index in range(args.warmup + args.rounds):
        for name, command in named:
            elapsed = spawn_and_wait(command, null)
            time.sleep(args.pause_ms / 1000)
            if round_index >= args.warmup:
                times[name].append(elapsed)
    reference = statistics.median(times[named[0][0]])
    for name, _ in named:
        ordered = sorted(times[name])
        median = statistics.median(ordered)
        print("%-12s median %6.1f ms  p10 %6.1f  p90 %6.1f  %.2fx %s" % (
            name, median, ordered[len(ordered) // 10], ordered[len(ordered) * 9 // 10], median / reference, named[0][0]))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(times, out)

main()
