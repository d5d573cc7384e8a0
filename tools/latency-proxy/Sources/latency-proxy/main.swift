// latency-proxy: a TCP proxy on loopback that delays every chunk of bytes, in each direction, by a
// fixed one-way delay (10 ms each way = 20 ms round trip). Each accepted connection gets its own
// upstream connection (one to one, opened when the client connects, closed when either side
// closes), so connection reuse, keep-alive and pipelining behave as they would across a WAN.
// A new connection also costs one round trip (the TCP handshake): its first client bytes leave
// no earlier than 2 x delay after the accept, then take the delay (--no-handshake-delay: off).
//
//   latency-proxy --listen 127.0.0.1:0 --upstream 127.0.0.1:PORT --delay-ms 10 [--threads N]
//                 [--max-seconds S] [--no-handshake-delay]
//       prints `listening on PORT` on stdout, then relays until killed (or S seconds, default 3600).
//   latency-proxy --measure-capacity --upstream 127.0.0.1:PORT [--path /file] [--connections 64]
//                 [--seconds 3] [--threads N]
//       runs the proxy with zero delay and reports how many HTTP GET round trips per second it
//       sustains against the upstream with many concurrent keep-alive connections (and, for
//       comparison, the same load sent straight to the upstream).
//
// Bytes are never reordered: each direction keeps a FIFO of (deadline, bytes); a timer writes
// everything that is due and re-arms for the next deadline. A direction stops reading while its
// queue holds more than 8 MiB or the other side's socket is not writable (back-pressure).

import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - options

struct Options {
    var listenHost = "127.0.0.1"
    var listenPort = 0
    var upstreamHost = "127.0.0.1"
    var upstreamPort = -1
    var delayMs = 0.0
    var threads = max(1, System.coreCount)
    var maxSeconds = 3600.0
    var measure = false
    var handshake = true
    var path = "/"
    var connections = 64
    var seconds = 3.0
}

func fail(_ message: String) -> Never {
    FileHandleOut.stderr("latency-proxy: \(message)\n")
    exit(2)
}

enum FileHandleOut {
    static func stdout(_ text: String) { put(text, fd: 1) }

    static func stderr(_ text: String) { put(text, fd: 2) }

    private static func put(_ text: String, fd: Int32) {
        var text = text
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n <= 0 { return }
                offset += n
            }
        }
    }
}

func splitHostPort(_ text: String, _ flag: String) -> (String, Int) {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
          (0...65535).contains(port)
    else { fail("\(flag) wants HOST:PORT, got \(text)") }
    var host = String(text[..<colon])
    if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    return (host.isEmpty ? "127.0.0.1" : host, port)
}

func parseOptions(_ args: [String]) -> Options {
    var o = Options()
    var i = 0
    func value() -> String {
        i += 1
        guard i < args.count else { fail("\(args[i - 1]) needs a value") }
        return args[i]
    }
    while i < args.count {
        let a = args[i]
        switch a {
        case "--listen": (o.listenHost, o.listenPort) = splitHostPort(value(), a)
        case "--upstream":
            var v = value()
            if v.hasPrefix("http://") { v = String(v.dropFirst(7)) }
            if v.hasSuffix("/") { v = String(v.dropLast()) }
            (o.upstreamHost, o.upstreamPort) = splitHostPort(v, a)
        case "--delay-ms":
            guard let d = Double(value()), d >= 0 else { fail("--delay-ms wants a number ≥ 0") }
            o.delayMs = d
        case "--threads":
            guard let n = Int(value()), n > 0 else { fail("--threads wants a positive integer") }
            o.threads = n
        case "--max-seconds":
            guard let s = Double(value()), s > 0 else { fail("--max-seconds wants a positive number") }
            o.maxSeconds = s
        case "--measure-capacity": o.measure = true
        case "--no-handshake-delay": o.handshake = false
        case "--path": o.path = value()
        case "--connections":
            guard let n = Int(value()), n > 0 else { fail("--connections wants a positive integer") }
            o.connections = n
        case "--seconds":
            guard let s = Double(value()), s > 0, s <= 60 else { fail("--seconds wants a number in (0, 60]") }
            o.seconds = s
        case "-h", "--help":
            FileHandleOut.stdout("""
            usage: latency-proxy --listen 127.0.0.1:0 --upstream 127.0.0.1:PORT --delay-ms MS [--threads N] [--max-seconds S]
                                 [--no-handshake-delay]
                   latency-proxy --measure-capacity --upstream 127.0.0.1:PORT [--path /file] [--connections 64] [--seconds 3]

            """)
            exit(0)
        default: fail("unknown argument \(a) (see --help)")
        }
        i += 1
    }
    if o.upstreamPort < 0 { fail("--upstream 127.0.0.1:PORT is required") }
    return o
}

// MARK: - the relay

/// One side of a proxied connection. Bytes read here are queued with a deadline and written to
/// the partner (the other side's handler, on the same event loop) when due.
final class RelayHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let highWater = 8 << 20

    let delay: TimeAmount
    var partner: RelayHandler?
    private var context: ChannelHandlerContext?
    /// nil bytes: end of stream (close the partner when due)
    private var queue = CircularBuffer<(deadline: NIODeadline, bytes: ByteBuffer?)>()
    private var queuedBytes = 0
    private var timer: Scheduled<Void>?
    private var readPending = false
    private var sawEnd = false
    /// No byte read here is due before this instant plus the delay (the simulated TCP handshake).
    var notBefore = NIODeadline.uptimeNanoseconds(0)

    init(delay: TimeAmount) { self.delay = delay }

    static func pair(delay: TimeAmount) -> (RelayHandler, RelayHandler) {
        let a = RelayHandler(delay: delay)
        let b = RelayHandler(delay: delay)
        a.partner = b
        b.partner = a
        return (a, b)
    }

    private var eventLoop: EventLoop?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        eventLoop = context.eventLoop
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        // Bytes read from this side before it closed are still due to the other side: a server
        // that closes right after its response (moto, `Connection: close`) must not lose it.
        if queue.isEmpty {
            timer?.cancel()
            timer = nil
            partner = nil
        }
    }

    // inbound: bytes from this side's peer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        if delay == .zero && queue.isEmpty {
            partner?.emit(bytes)
            return
        }
        queue.append((max(NIODeadline.now(), notBefore) + delay, bytes))
        queuedBytes += bytes.readableBytes
        arm()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if delay == .zero { partner?.flushOut() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        end()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed { end() }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.resumeReading() }
        context.fireChannelWritabilityChanged()
    }

    // outbound: NIO asks to read more from this side's peer
    func read(context: ChannelHandlerContext) {
        if canRead() {
            context.read()
        } else {
            readPending = true
        }
    }

    private func canRead() -> Bool {
        guard let partner, let pc = partner.context else { return true }
        return queuedBytes < Self.highWater && pc.channel.isWritable
    }

    func resumeReading() {
        if readPending, canRead(), let context {
            readPending = false
            context.read()
        }
    }

    private func end() {
        guard !sawEnd else { return }
        sawEnd = true
        if delay == .zero && queue.isEmpty {
            partner?.closeOut()
            return
        }
        queue.append((max(NIODeadline.now(), notBefore) + delay, nil))
        arm()
    }

    private func arm() {
        guard timer == nil, let head = queue.first, let eventLoop else { return }
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        timer = eventLoop.scheduleTask(deadline: head.deadline) {
            bound.value.fire()
        }
    }

    private func fire() {
        timer = nil
        let now = NIODeadline.now()
        var wrote = false
        while let head = queue.first, head.deadline <= now {
            queue.removeFirst()
            if let bytes = head.bytes {
                queuedBytes -= bytes.readableBytes
                partner?.emit(bytes)
                wrote = true
            } else {
                if wrote { partner?.flushOut() }
                partner?.closeOut()
                queue.removeAll()
                queuedBytes = 0
                if context == nil { partner = nil }
                return
            }
        }
        if wrote { partner?.flushOut() }
        resumeReading()
        arm()
        if context == nil && queue.isEmpty { partner = nil }
    }

    // called by the partner: send to this side's peer
    func emit(_ bytes: ByteBuffer) {
        context?.write(wrapOutboundOut(bytes), promise: nil)
    }

    func flushOut() { context?.flush() }

    func closeOut() {
        guard let context else { return }
        context.close(promise: nil)
    }
}

func startProxy(group: EventLoopGroup, options o: Options, delay: TimeAmount) throws -> Channel {
    let handshake = o.handshake
    let upstreamHost = o.upstreamHost
    let upstreamPort = o.upstreamPort
    return try ServerBootstrap(group: group)
        .serverChannelOption(.backlog, value: 1024)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
        .childChannelOption(.maxMessagesPerRead, value: 16)
        .childChannelInitializer { inbound in
            ClientBootstrap(group: inbound.eventLoop)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelOption(.maxMessagesPerRead, value: 16)
                .connectTimeout(.seconds(10))
                .connect(host: upstreamHost, port: upstreamPort)
                .flatMapThrowing { outbound in
                    let (client, server) = RelayHandler.pair(delay: delay)
                    if handshake {
                        // a new connection costs one round trip before the client's first byte leaves
                        client.notBefore = NIODeadline.now() + delay + delay
                    }
                    do {
                        try inbound.pipeline.syncOperations.addHandler(client)
                        try outbound.pipeline.syncOperations.addHandler(server)
                    } catch {
                        outbound.close(promise: nil)
                        throw error
                    }
                    // closing either side closes the other (after the delay, through the relay)
                }
        }
        .bind(host: o.listenHost, port: o.listenPort)
        .wait()
}

// MARK: - capacity measurement

/// Keeps one GET outstanding on its connection until the deadline; counts completed round trips.
final class LoadHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    let path: String
    let host: String
    let stopAt: NIODeadline
    let counter: NIOLockedValueBox<(ok: Int, bad: Int)>
    private var status: UInt = 0

    init(path: String, host: String, stopAt: NIODeadline, counter: NIOLockedValueBox<(ok: Int, bad: Int)>) {
        self.path = path
        self.host = host
        self.stopAt = stopAt
        self.counter = counter
    }

    func channelActive(context: ChannelHandlerContext) {
        send(context: context)
        context.fireChannelActive()
    }

    private func send(context: ChannelHandlerContext) {
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
        head.headers.add(name: "Host", value: host)
        head.headers.add(name: "Range", value: "bytes=0-4095")
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): status = head.status.code
        case .body: break
        case .end:
            let now = NIODeadline.now()
            let good = (200..<300).contains(status)
            if now <= stopAt {
                counter.withLockedValue { if good { $0.ok += 1 } else { $0.bad += 1 } }
                send(context: context)
            } else {
                context.close(promise: nil)
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        counter.withLockedValue { $0.bad += 1 }
        context.close(promise: nil)
    }
}

func measure(group: EventLoopGroup, host: String, port: Int, options o: Options) throws -> (Double, Int) {
    let counter = NIOLockedValueBox((ok: 0, bad: 0))
    let start = NIODeadline.now()
    let stopAt = start + .nanoseconds(Int64(o.seconds * 1e9))
    let path = o.path
    let hostHeader = "\(host):\(port)"
    var channels: [Channel] = []
    for _ in 0..<o.connections {
        let ch = try ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(
                        LoadHandler(path: path, host: hostHeader, stopAt: stopAt, counter: counter))
                }
            }
            .connect(host: host, port: port)
            .wait()
        channels.append(ch)
    }
    for ch in channels {
        try? ch.closeFuture.wait()
    }
    let (ok, bad) = counter.withLockedValue { $0 }
    return (Double(ok) / o.seconds, bad)
}

// MARK: - main

signal(SIGPIPE, SIG_IGN)
let options = parseOptions(Array(CommandLine.arguments.dropFirst()))

if options.measure {
    let proxyGroup = MultiThreadedEventLoopGroup(numberOfThreads: options.threads)
    let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    do {
        var o = options
        o.listenHost = "127.0.0.1"
        o.listenPort = 0
        let proxy = try startProxy(group: proxyGroup, options: o, delay: .zero)
        let proxyPort = proxy.localAddress?.port ?? 0
        let (direct, directBad) = try measure(group: clientGroup, host: options.upstreamHost, port: options.upstreamPort,
                                              options: options)
        let (viaProxy, proxyBad) = try measure(group: clientGroup, host: "127.0.0.1", port: proxyPort, options: options)
        try proxy.close().wait()
        let failed = directBad + proxyBad
        FileHandleOut.stdout(
            "latency-proxy capacity: \(Int(viaProxy.rounded())) GET round trips/s through the proxy "
                + "(\(Int(direct.rounded()))/s straight to the upstream), \(options.connections) connections, "
                + "\(options.seconds) s each, \(options.threads) proxy threads"
                + (failed > 0 ? " (\(failed) failed requests)" : "") + "\n")
    } catch {
        fail("capacity measurement failed: \(error)")
    }
    try? clientGroup.syncShutdownGracefully()
    try? proxyGroup.syncShutdownGracefully()
    exit(0)
}

let group = MultiThreadedEventLoopGroup(numberOfThreads: options.threads)
let delay = TimeAmount.nanoseconds(Int64(options.delayMs * 1_000_000))
let server: Channel
do {
    server = try startProxy(group: group, options: options, delay: delay)
} catch {
    fail("cannot listen on \(options.listenHost):\(options.listenPort): \(error)")
}
FileHandleOut.stdout("listening on \(server.localAddress?.port ?? 0)\n")
let limit = options.maxSeconds
group.next().scheduleTask(in: .nanoseconds(Int64(limit * 1e9))) {
    FileHandleOut.stderr("latency-proxy: --max-seconds \(limit) reached; exiting\n")
    exit(0)
}
try? server.closeFuture.wait()
