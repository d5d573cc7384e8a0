import ArgumentParser
import Foundation
import ZarrFS

/// How `zarrmount mount` (without --foreground) leaves a daemon behind and waits for it.
///
/// The daemon is a fork of the command, taken before the process has a second thread: the
/// child already holds the parsed arguments and the loaded binary, so the mount costs one
/// start of the program instead of two (docs/benchmarks.md, "Mounting from a manifest"). A
/// fork copies only the calling thread, so a process that already has other threads (whose
/// locks the child would inherit held) runs the daemon as a new program instead, as does
/// `ZARRMOUNT_DAEMON_EXEC=1` (for tests and for debugging with a fresh process).
enum Daemon {
    /// The environment variable that chooses a new program over a fork.
    static let execVariable = "ZARRMOUNT_DAEMON_EXEC"

    /// Which side of the fork this process is on.
    enum Side {
        /// The daemon: its stdin and stdout are /dev/null and its stderr the pipe the caller
        /// forwards; it goes on to mount in the foreground and writes the ready file.
        case daemon
        /// The caller, with the daemon to wait for.
        case caller(DaemonHandle)
    }

    /// Whether a fork is safe and wanted: the process has only its main thread.
    static var canFork: Bool {
        guard ProcessInfo.processInfo.environment[execVariable] != "1" else { return false }
        let threads = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? 0
        return threads == 1
    }

    /// Forks; the child's standard streams are set up as a daemon's. `progressToTerminal`
    /// tells the daemon that its progress, forwarded by the caller, ends up on a terminal.
    static func fork(progressToTerminal: Bool) throws -> Side {
        let errors = try errorPipe()
        let pid = Glibc.fork()
        guard pid >= 0 else {
            close(errors.read)
            close(errors.write)
            throw DaemonError.cannotStart("fork failed: \(String(cString: strerror(errno)))")
        }
        if pid == 0 {
            close(errors.read)
            let null = open("/dev/null", O_RDWR)
            if null >= 0 {
                dup2(null, STDIN_FILENO)
                dup2(null, STDOUT_FILENO)
                if null > STDERR_FILENO { close(null) }
            }
            dup2(errors.write, STDERR_FILENO)
            closeInheritedDescriptors()
            if progressToTerminal { setenv(progressTerminalVariable, "1", 1) }
            return .daemon
        }
        close(errors.write)
        return .caller(DaemonHandle(pid: pid, errors: errors.read))
    }

    /// Closes every descriptor but the standard three, in a daemon before it has a second
    /// thread: nothing else the caller held stays open until the unmount (a pipe a script
    /// waits on for end of file would wait that long).
    static func closeInheritedDescriptors() {
        closefrom(STDERR_FILENO + 1)
    }

    /// Starts `executable` with `arguments` as the daemon, a new program; it closes what it
    /// inherited itself (`closeInheritedDescriptors`), when it starts.
    static func spawn(executable: String, arguments: [String], progressToTerminal: Bool) throws -> DaemonHandle {
        let errors = try errorPipe()
        defer { close(errors.write) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, errors.write, STDERR_FILENO)
        var environment = ProcessInfo.processInfo.environment
        environment[execVariable] = nil
        if progressToTerminal { environment[progressTerminalVariable] = "1" }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard status == 0 else {
            close(errors.read)
            throw DaemonError.cannotStart("cannot run \(executable): \(String(cString: strerror(status)))")
        }
        return DaemonHandle(pid: pid, errors: errors.read)
    }

    /// A pipe for the daemon's stderr; both ends close on exec, so no program the daemon runs
    /// (fusermount3) holds it open and delays the caller's end of file.
    private static func errorPipe() throws -> (read: Int32, write: Int32) {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else {
            throw DaemonError.cannotStart("cannot make a pipe: \(String(cString: strerror(errno)))")
        }
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        return (ends[0], ends[1])
    }
}

enum DaemonError: Error, CustomStringConvertible {
    case cannotStart(String)

    var description: String {
        switch self {
        case .cannotStart(let reason): "cannot start the mount daemon: \(reason)"
        }
    }
}

/// The caller's side of a daemon: forwards its stderr (the scan's progress and summary) until
/// the daemon closes it, relays a stop signal, and decides the caller's exit status.
struct DaemonHandle {
    let pid: pid_t
    /// The read end of the daemon's stderr.
    let errors: Int32

    /// Waits until the daemon has mounted `mountpoint` or exited, and returns the caller's exit
    /// status: 0 when it serves the mount, 2 when it does but files were skipped (as `scan`
    /// does), otherwise the daemon's own failure status (at least 1).
    func awaitMount(at mountpoint: String, readyFile: String) -> Int32 {
        // The scan's progress and summary reach the caller live; the daemon closes its end once
        // the mount is ready (or it exits), which ends the forwarding.
        let forwarded = DispatchSemaphore(value: 0)
        let errors = self.errors
        let forwarder = Thread {
            let handle = FileHandle(fileDescriptor: errors, closeOnDealloc: true)
            while case let data = handle.availableData, !data.isEmpty { FileHandle.standardError.write(data) }
            forwarded.signal()
        }
        forwarder.start()
        // The daemon runs in its own session (so the terminal's signals do not end a finished
        // mount); until it is ready, a signal to this command stops the daemon's scan too.
        let stopSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP]
        let pid = self.pid
        let signalSources = stopSignals.map { (number: Int32) -> any DispatchSourceSignal in
            _ = signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                kill(pid, SIGTERM)
                printError("zarrmount: stopped by signal \(number) before the mount was ready; the scan is stopped")
                Glibc.exit(128 + number)
            }
            source.resume()
            return source
        }
        defer {
            for (source, number) in zip(signalSources, stopSignals) {
                source.cancel()
                _ = signal(number, SIG_DFL)
            }
        }
        // The daemon's stderr ends (EOF) when it is ready, having written the ready file, or
        // when it exits: no polling.
        forwarded.wait()
        let report = (try? String(contentsOfFile: readyFile, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: readyFile)
        // The kernel mount exists; asking the root for its status proves the daemon finished
        // the FUSE handshake and answers requests (and finds the mount when the ready file
        // could not be written).
        if isRunning, report.hasPrefix("ready") || FuseMount.readStatus(mountpoint) != nil {
            if FuseMount.readStatus(mountpoint) != nil {
                printError("zarrmount: daemon \(pid) serving \(mountpoint)")
                let skipped = report.split(separator: "\n").first { $0.hasPrefix("skipped ") }.flatMap { Int($0.dropFirst(8)) } ?? 0
                if skipped > 0 {
                    printError("zarrmount: \(skipped) file\(skipped == 1 ? " was" : "s were") skipped (listed above); exit status 2")
                    return 2
                }
                return 0
            }
            kill(pid, SIGTERM)
        }
        let status = waitForExit()
        return status == 0 ? 1 : status
    }

    /// Whether the daemon has not exited yet (it is not reaped here when it has).
    private var isRunning: Bool {
        var info = siginfo_t()
        // WNOWAIT leaves an exited daemon to waitForExit, which takes its status.
        guard waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 else { return false }
        return info._sifields._sigchld.si_pid == 0
    }

    /// The daemon's exit status, or its signal's number when a signal ended it.
    private func waitForExit() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { return 1 }
        }
        let low = status & 0x7f
        return low == 0 ? (status >> 8) & 0xff : low
    }
}
