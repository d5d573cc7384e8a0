import Foundation
import Scanner
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

let progressTerminalVariable = "ZARRMOUNT_PROGRESS_TERMINAL"

/// Scan progress on stderr: a live line on a terminal, a line every few seconds otherwise.
final class ProgressReporter: Sendable {
    /// A daemonised mount writes through a pipe its parent copies to the terminal; the parent
    /// says so in `ZARRMOUNT_PROGRESS_TERMINAL`, and the bar is drawn as on a terminal.
    private let isTerminal = standardErrorIsLiveTerminal || ProcessInfo.processInfo.environment[progressTerminalVariable] == "1"
    private let state = Mutex<(lastPrint: ContinuousClock.Instant?, printed: Bool)>((nil, false))

    func update(_ progress: ScanProgress) {
        let now = ContinuousClock.now
        let line: String? = state.withLock { state in
            let interval: Duration = isTerminal ? .milliseconds(100) : .seconds(3)
            if let last = state.lastPrint, now - last < interval, progress.filesDone < progress.filesTotal { return nil }
            state.lastPrint = now
            state.printed = true
            return render(progress)
        }
        guard let line else { return }
        FileHandleWriter.writeToStandardError(isTerminal ? "\r\u{1B}[2K" + line : line + "\n")
    }

    func finish() {
        if isTerminal, state.withLock({ $0.printed }) { FileHandleWriter.writeToStandardError("\n") }
    }

    private func render(_ progress: ScanProgress) -> String {
        let seconds = max(progress.elapsed.seconds, 1e-6)
        let rate = Double(progress.filesDone) / seconds
        let remaining = rate > 0 ? Double(progress.filesTotal - progress.filesDone) / rate : 0
        let width = 24
        let filled = progress.filesTotal == 0 ? width : width * progress.filesDone / progress.filesTotal
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        // Remote scans count what costs: HTTP requests; local ones their reads.
        let io = progress.httpRequests.map { "\($0) requests" } ?? "\(progress.requests) reads"
        return String(
            format: "[%@] %d/%d files  %.0f files/s  %@  %@  %d errors  ETA %.0f s", bar, progress.filesDone,
            progress.filesTotal, rate, formatBytes(progress.bytesRead), io, progress.errors, remaining)
    }
}

extension Duration {
    /// In seconds, for the lines the commands print.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
