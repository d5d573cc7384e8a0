import ArgumentParser
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The logging flags every command takes (`docs/cli-conventions.md` has the table). The log is
/// what the code reports through swift-log at `--log-level` and above; errors, warnings about
/// the input, progress and results are the command's output and stay on stderr and stdout.
struct LoggingOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning (default), error or critical.")
    var logLevel: Logger.Level = .warning

    @Option(
        help: ArgumentHelp(
            "Append the log to this file instead of stderr. For mount: the daemon's log, and in the background all it prints after mounting.",
            valueName: "path"))
    var logFile: String?

    /// A logger at `logLevel` writing to `logFile` or stderr; an unwritable file stops the
    /// command before it does anything else.
    func makeLogger() throws -> Logger {
        guard let logFile else { return zarrmount.makeLogger(level: logLevel) }
        let sink = try LogFile(path: logFile)
        var logger = Logger(label: "zarrmount") { label in LogFileHandler(label: label, file: sink) }
        logger.logLevel = logLevel
        return logger
    }
}

func makeLogger(level: Logger.Level) -> Logger {
    var logger = Logger(label: "zarrmount") { label in StreamLogHandler.standardError(label: label) }
    logger.logLevel = level
    return logger
}

/// Whether stderr takes a live, redrawn line: a terminal that is not `TERM=dumb`. Otherwise
/// (a pipe, a file, a dumb terminal, Emacs' shell) progress comes as whole lines and nothing
/// prints a control sequence. zarrmount prints no colour, so `NO_COLOR` holds already.
var standardErrorIsLiveTerminal: Bool {
    isatty(STDERR_FILENO) != 0 && ProcessInfo.processInfo.environment["TERM"] != "dumb"
}

/// A log file opened for appending, shared by the handlers of one process.
final class LogFile: Sendable {
    private let descriptor: Int32

    init(path: String) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            printError("error: --log-file \(path): cannot open it for writing (\(String(cString: strerror(errno))))")
            throw ExitCode(1)
        }
        self.descriptor = descriptor
    }

    /// One write per line: with O_APPEND, lines of several threads or processes do not interleave.
    func write(_ line: String) {
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
    }

    deinit { close(descriptor) }
}

/// swift-log's handler for a `LogFile`, in the format of its stderr handler, with the process id
/// (a mount's parent and daemon may share one file).
struct LogFileHandler: LogHandler {
    let label: String
    let file: LogFile
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        let fields = merged.isEmpty ? "" : " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let error = event.error.map { " error=\($0)" } ?? ""
        let time = Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
        file.write("\(time) \(event.level) \(label)[\(getpid())]:\(fields)\(error) \(event.message)\n")
    }
}
