import CCurl
import Foundation
import Logging
import Synchronization

/// One libcurl multi handle driven by its own thread: many concurrent transfers over reused
/// connections (HTTP/2 multiplexed when the server offers it). Swift code submits requests and
/// awaits their responses; all libcurl calls happen on the engine thread, which waits in epoll
/// for the sockets libcurl names and hands each event to `curl_multi_socket_action`, so a
/// wake-up costs the sockets that are ready, not all of them.
public final class CurlEngine: HTTPTransport, Sendable {
    public struct Configuration: Sendable {
        /// Connections to one server at most. At 20 ms round trip a scan is bound by requests in
        /// flight × round trip below about 100; small servers (moto, a laptop's MinIO) fall over
        /// well above it.
        public var maxConnectionsPerHost = 128
        public var connectTimeout: Duration = .seconds(10)
        /// A transfer slower than `lowSpeedLimit` bytes/s for this long is aborted.
        public var lowSpeedTime: Duration = .seconds(20)
        public var lowSpeedLimit = 1024
        /// Transfers handed to libcurl at once (nil: as many as connections to one server); the
        /// rest wait in the engine's own queue. A transfer libcurl holds back for a free
        /// connection runs its timeouts while it waits, so under load the queue must be ours.
        public var maxActiveTransfers: Int?
        /// Certificates that HTTPS servers are verified against instead of the system's (a PEM
        /// file: `--ca-bundle`, `CURL_CA_BUNDLE`, `SSL_CERT_FILE`). Verification is never off.
        public var caBundle: String?

        public init() {}
    }

    /// libcurl's multi handle. Only the engine thread uses it, except `curl_multi_wakeup`,
    /// which libcurl documents as callable from any thread.
    private struct MultiHandle: @unchecked Sendable {
        let pointer: UnsafeMutableRawPointer
    }
    private let handle: MultiHandle
    private var multi: UnsafeMutableRawPointer { handle.pointer }
    private let queue = Mutex<(pending: [Transfer], stopping: Bool)>(([], false))
    private let sockets: SocketEvents
    private let configuration: Configuration
    private let logger: Logger?
    /// Signalled once by the engine thread when it has released everything (`shutdown` waits).
    private let finished = DispatchSemaphore(value: 0)

    /// The state of one transfer, reached from libcurl callbacks through a raw pointer.
    final class Transfer: @unchecked Sendable {
        let request: HTTPRequest
        let continuation: CheckedContinuation<HTTPResponse, any Error>
        var body: [UInt8] = []
        var headers: [(String, String)] = []
        var status = 0
        var overflow = false
        var headerList: UnsafeMutablePointer<curl_slist>?
        var easy: UnsafeMutableRawPointer?

        init(request: HTTPRequest, continuation: CheckedContinuation<HTTPResponse, any Error>) {
            self.request = request
            self.continuation = continuation
        }
    }

    public init(configuration: Configuration = Configuration(), logger: Logger? = nil) {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        handle = MultiHandle(pointer: curl_multi_init())
        sockets = SocketEvents()
        self.configuration = configuration
        self.logger = logger
        _ = ccurl_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, configuration.maxConnectionsPerHost)
        _ = ccurl_multi_setopt_long(multi, CURLMOPT_PIPELINING, Int(CURLPIPE_MULTIPLEX))
        // libcurl's default keeps 4 idle connections per transfer in progress, so every lull
        // between a scan's rounds closed most of them, and the next round paid a new connection
        // (one round trip more, and its setup on both ends) for each.
        _ = ccurl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, configuration.maxConnectionsPerHost)
        let events = Unmanaged.passUnretained(sockets).toOpaque()
        _ = ccurl_multi_setopt_socket_callback(multi) { _, socket, what, events, _ in
            Unmanaged<SocketEvents>.fromOpaque(events!).takeUnretainedValue().watch(socket, what: what)
            return 0
        }
        _ = ccurl_multi_setopt_pointer(multi, CURLMOPT_SOCKETDATA, events)
        _ = ccurl_multi_setopt_timer_callback(multi) { _, milliseconds, events in
            Unmanaged<SocketEvents>.fromOpaque(events!).takeUnretainedValue().setTimer(milliseconds: milliseconds)
            return 0
        }
        _ = ccurl_multi_setopt_pointer(multi, CURLMOPT_TIMERDATA, events)
        let engine = Unmanaged.passUnretained(self)
        let thread = Thread { engine.takeUnretainedValue().run() }
        thread.name = "zarrmount-curl"
        thread.start()
    }

    /// Stops the engine thread after failing anything still queued. Call once, when done.
    public func shutdown() {
        queue.withLock { $0.stopping = true }
        sockets.wake()
        finished.wait()
    }

    public func perform(_ request: HTTPRequest) async throws -> HTTPResponse {
        try await withCheckedThrowingContinuation { continuation in
            let transfer = Transfer(request: request, continuation: continuation)
            let accepted = queue.withLock { state -> Bool in
                if state.stopping { return false }
                state.pending.append(transfer)
                return true
            }
            if accepted {
                sockets.wake()
            } else {
                continuation.resume(throwing: TransportError(code: -1, message: "the HTTP engine was shut down", url: request.url))
            }
        }
    }

    private func run() {
        var active: [UnsafeMutableRawPointer: Transfer] = [:]
        var waiting: [Transfer] = []
        var waitingStart = 0
        var spareHandles: [UnsafeMutableRawPointer] = []
        let limit = configuration.maxActiveTransfers ?? configuration.maxConnectionsPerHost
        let readyCapacity = 256
        let readySockets = UnsafeMutablePointer<Int32>.allocate(capacity: readyCapacity)
        let readyFlags = UnsafeMutablePointer<Int32>.allocate(capacity: readyCapacity)
        defer {
            readySockets.deallocate()
            readyFlags.deallocate()
        }
        var running: Int32 = 0

        func collectFinished() {
            var remaining: Int32 = 0
            while let message = curl_multi_info_read(multi, &remaining) {
                guard ccurl_message_is_done(message) != 0, let easy = message.pointee.easy_handle,
                    let transfer = active.removeValue(forKey: easy)
                else { continue }
                let result = ccurl_message_result(message)
                curl_multi_remove_handle(multi, easy)
                complete(transfer, easy: easy, result: result)
                spareHandles.append(easy)
            }
        }

        func runTimerIfDue() {
            if sockets.timerIsDue() { curl_multi_socket_action(multi, ccurl_socket_timeout, 0, &running) }
        }

        while true {
            let (incoming, stopping) = queue.withLock { state -> ([Transfer], Bool) in
                defer { state.pending.removeAll() }
                return (state.pending, state.stopping)
            }
            waiting += incoming
            if stopping {
                for transfer in waiting[waitingStart...] + Array(active.values) {
                    if let easy = transfer.easy { curl_multi_remove_handle(multi, easy); cleanup(easy, transfer) }
                    transfer.continuation.resume(throwing: TransportError(code: -1, message: "the HTTP engine was shut down", url: transfer.request.url))
                }
                for handle in spareHandles { curl_easy_cleanup(handle) }
                curl_multi_cleanup(multi)
                sockets.close()
                finished.signal()
                return
            }
            while waitingStart < waiting.count, active.count < limit {
                let transfer = waiting[waitingStart]
                waitingStart += 1
                guard let easy = makeHandle(transfer, reusing: spareHandles.popLast()) else {
                    transfer.continuation.resume(throwing: TransportError(code: -1, message: "cannot create a transfer", url: transfer.request.url))
                    continue
                }
                active[easy] = transfer
                // libcurl answers by setting a timer of 0 ms, which starts the transfer below.
                curl_multi_add_handle(multi, easy)
            }
            if waitingStart == waiting.count {
                waiting.removeAll(keepingCapacity: true)
                waitingStart = 0
            }
            runTimerIfDue()
            collectFinished()
            // Transfers finished just now may have freed places for queued ones: those start
            // at once, not after the wait's timeout (a whole second with every socket idle).
            if waitingStart < waiting.count, active.count < limit { continue }
            if sockets.timerIsDue(peek: true) { continue }
            let ready = sockets.wait(into: readySockets, flags: readyFlags, capacity: readyCapacity)
            for index in 0..<ready {
                curl_multi_socket_action(multi, readySockets[index], readyFlags[index], &running)
            }
            runTimerIfDue()
            collectFinished()
        }
    }

    /// Configures a transfer on a recycled handle (reset to defaults; libcurl keeps its caches)
    /// or a new one.
    private func makeHandle(_ transfer: Transfer, reusing spare: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
        let easy: UnsafeMutableRawPointer
        if let spare {
            curl_easy_reset(spare)
            easy = spare
        } else {
            guard let fresh = curl_easy_init() else { return nil }
            easy = fresh
        }
        transfer.easy = easy
        let request = transfer.request
        _ = ccurl_easy_setopt_string(easy, CURLOPT_URL, request.url)
        _ = ccurl_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        // Only HTTP(S), also for a URL from a reference file; redirects are followed by
        // `RemoteStore.send` within one origin, never by libcurl to wherever they point.
        _ = ccurl_easy_setopt_string(easy, CURLOPT_PROTOCOLS_STR, "http,https")
        _ = ccurl_easy_setopt_string(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https")
        _ = ccurl_easy_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 0)
        if let caBundle = configuration.caBundle { _ = ccurl_easy_setopt_string(easy, CURLOPT_CAINFO, caBundle) }
        _ = ccurl_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Int(configuration.connectTimeout.components.seconds * 1000))
        _ = ccurl_easy_setopt_long(easy, CURLOPT_LOW_SPEED_LIMIT, configuration.lowSpeedLimit)
        _ = ccurl_easy_setopt_long(easy, CURLOPT_LOW_SPEED_TIME, Int(configuration.lowSpeedTime.components.seconds))
        _ = ccurl_easy_setopt_long(easy, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS))
        // Waiting for a connection to multiplex on only pays off where HTTP/2 can be negotiated
        // (TLS); on plain HTTP/1.1 it would queue requests behind each other.
        if request.url.hasPrefix("https://") { _ = ccurl_easy_setopt_long(easy, CURLOPT_PIPEWAIT, 1) }
        if request.method == .head { _ = ccurl_easy_setopt_long(easy, CURLOPT_NOBODY, 1) }
        var list: UnsafeMutablePointer<curl_slist>?
        for (name, value) in request.headers { list = curl_slist_append(list, "\(name): \(value)") }
        // libcurl adds "Expect" and "Accept" on its own; ranged bytes must arrive unencoded.
        list = curl_slist_append(list, "Accept:")
        transfer.headerList = list
        _ = ccurl_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, list)
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        _ = ccurl_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, context)
        _ = ccurl_easy_setopt_pointer(easy, CURLOPT_HEADERDATA, context)
        _ = ccurl_easy_setopt_write_callback(easy) { data, size, count, context in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            let total = size * count
            if transfer.body.count + total > transfer.request.maxBodyBytes {
                transfer.overflow = true
                return 0
            }
            if transfer.body.isEmpty, let announced = transfer.headers.last(where: { $0.0.lowercased() == "content-length" }).flatMap({ Int($0.1) }) {
                // One allocation of the announced size: growing by doubling copies large bodies
                // several times.
                transfer.body.reserveCapacity(min(announced, transfer.request.maxBodyBytes))
            }
            data!.withMemoryRebound(to: UInt8.self, capacity: total) { bytes in
                transfer.body.append(contentsOf: UnsafeBufferPointer(start: bytes, count: total))
            }
            return total
        }
        _ = ccurl_easy_setopt_header_callback(easy) { data, size, count, context in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            let total = size * count
            data!.withMemoryRebound(to: UInt8.self, capacity: total) { pointer in
                CurlEngine.parseHeaderLine(UnsafeBufferPointer(start: pointer, count: total), into: transfer)
            }
            return total
        }
        return easy
    }

    /// One header line, parsed on bytes (this runs for every line of every response).
    static func parseHeaderLine(_ line: UnsafeBufferPointer<UInt8>, into transfer: Transfer) {
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0d || byte == 0x0a }
        var start = 0
        var end = line.count
        while start < end, isSpace(line[start]) { start += 1 }
        while end > start, isSpace(line[end - 1]) { end -= 1 }
        guard end > start else { return }
        if end - start >= 5, line[start] == UInt8(ascii: "H"), line[start + 1] == UInt8(ascii: "T"), line[start + 2] == UInt8(ascii: "T"),
            line[start + 3] == UInt8(ascii: "P"), line[start + 4] == UInt8(ascii: "/")
        {
            // A new response (after a redirect or 100-continue): start over.
            transfer.headers = []
            var index = start
            while index < end, line[index] != 0x20 { index += 1 }
            while index < end, line[index] == 0x20 { index += 1 }
            var status = 0
            while index < end, line[index] >= 0x30, line[index] <= 0x39 {
                status = status * 10 + Int(line[index] - 0x30)
                index += 1
            }
            transfer.status = status
            return
        }
        guard let colon = (start..<end).first(where: { line[$0] == UInt8(ascii: ":") }) else { return }
        var nameEnd = colon
        while nameEnd > start, isSpace(line[nameEnd - 1]) { nameEnd -= 1 }
        var valueStart = colon + 1
        while valueStart < end, isSpace(line[valueStart]) { valueStart += 1 }
        transfer.headers.append(
            (
                String(decoding: UnsafeBufferPointer(rebasing: line[start..<nameEnd]), as: UTF8.self),
                String(decoding: UnsafeBufferPointer(rebasing: line[valueStart..<end]), as: UTF8.self)
            ))
    }

    private func complete(_ transfer: Transfer, easy: UnsafeMutableRawPointer, result: CURLcode) {
        defer { release(transfer) }
        if transfer.overflow {
            transfer.continuation.resume(
                throwing: TransportError(
                    code: Int(CURLE_WRITE_ERROR.rawValue),
                    message: "response larger than the \(transfer.request.maxBodyBytes) bytes expected", url: transfer.request.url))
            return
        }
        guard result == CURLE_OK else {
            var text = curl_easy_strerror(result).map { String(cString: $0) } ?? "transfer failed"
            if result == CURLE_PEER_FAILED_VERIFICATION || result == CURLE_SSL_CACERT_BADFILE {
                text += configuration.caBundle.map { " (verified against \($0))" } ?? " (verified against the system's certificates)"
                text += "; for a server with its own certificate authority, give its certificate with --ca-bundle FILE"
            }
            logger?.debug("transfer failed", metadata: ["url": "\(transfer.request.url)", "error": "\(text)"])
            transfer.continuation.resume(throwing: TransportError(code: Int(result.rawValue), message: text, url: transfer.request.url))
            return
        }
        var status = 0
        _ = ccurl_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
        transfer.continuation.resume(
            returning: HTTPResponse(
                status: status == 0 ? transfer.status : status,
                headers: transfer.headers, body: transfer.body))
    }

    private func cleanup(_ easy: UnsafeMutableRawPointer, _ transfer: Transfer) {
        curl_easy_cleanup(easy)
        release(transfer)
    }

    private func release(_ transfer: Transfer) {
        curl_slist_free_all(transfer.headerList)
        transfer.headerList = nil
        transfer.easy = nil
    }
}

/// The sockets and the timer libcurl asks the engine to watch, and the eventfd that wakes the
/// engine for new requests. Its callbacks run inside libcurl calls on the engine thread, which
/// alone touches this state; `wake` is the one call from other threads (an eventfd write).
private final class SocketEvents: @unchecked Sendable {
    private let epoll: Int32
    private let wakeup: Int32
    private var watched: Set<Int32> = []
    private var timerDeadline: ContinuousClock.Instant?

    init() {
        epoll = ccurl_epoll_create()
        wakeup = ccurl_eventfd_create()
        precondition(epoll >= 0 && wakeup >= 0, "epoll_create1 or eventfd failed (errno \(errno))")
        _ = ccurl_epoll_watch(epoll, wakeup, 1, 0)
    }

    func wake() { ccurl_eventfd_signal(wakeup) }

    /// libcurl's socket callback: `what` is CURL_POLL_IN (1), OUT (2), INOUT (3) or REMOVE (4).
    func watch(_ socket: Int32, what: Int32) {
        if what == CURL_POLL_REMOVE {
            if watched.remove(socket) != nil { _ = ccurl_epoll_watch(epoll, socket, 0, 1) }
            return
        }
        let known = !watched.insert(socket).inserted
        _ = ccurl_epoll_watch(epoll, socket, what & 3, known ? 1 : 0)
    }

    /// libcurl's timer callback: -1 cancels the timer.
    func setTimer(milliseconds: Int) {
        timerDeadline = milliseconds < 0 ? nil : .now + .milliseconds(milliseconds)
    }

    /// Whether libcurl's timer has expired; clears it unless `peek`.
    func timerIsDue(peek: Bool = false) -> Bool {
        guard let deadline = timerDeadline, deadline <= .now else { return false }
        if !peek { timerDeadline = nil }
        return true
    }

    /// Waits until a watched socket is ready, the engine is woken, or libcurl's timer (at most
    /// a second) expires; returns the ready sockets.
    func wait(into sockets: UnsafeMutablePointer<Int32>, flags: UnsafeMutablePointer<Int32>, capacity: Int) -> Int {
        var timeout: Int32 = 1000
        if let deadline = timerDeadline {
            let left = deadline - .now
            let milliseconds = left.components.seconds * 1000 + (left.components.attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
            timeout = Int32(max(0, min(Int64(timeout), milliseconds)))
        }
        let count = Int(ccurl_epoll_wait(epoll, sockets, flags, Int32(capacity), timeout))
        guard count > 0 else { return 0 }
        var kept = 0
        for index in 0..<count {
            if sockets[index] == wakeup {
                ccurl_eventfd_drain(wakeup)
            } else {
                sockets[kept] = sockets[index]
                flags[kept] = flags[index]
                kept += 1
            }
        }
        return kept
    }

    /// Closes the epoll instance when the engine stops. The eventfd stays open until the
    /// engine is freed: a request racing the shutdown may still signal it.
    func close() {
        ccurl_close(epoll)
    }

    deinit {
        ccurl_close(wakeup)
    }
}
