import ByteSource

/// One header message, its body copied out of the header block.
struct HeaderMessage: Sendable {
    var type: UInt16
    var flags: UInt8
    var body: [UInt8]
    /// Absolute position of the body, for error messages.
    var origin: UInt64

    var isShared: Bool { flags & 0x02 != 0 }
}

/// An object header (version 1 or 2). `readFirstChunk` stops before the continuation blocks
/// so that callers can act on the first chunk (which holds a dataset's layout) while the rest
/// is still being fetched.
struct ObjectHeader: Sendable {
    var address: UInt64
    var version: Int
    var messages: [HeaderMessage]
    var pendingContinuations: [Continuation] = []
    var tracksCreationOrder = false
    private var visitedBlocks: Set<UInt64> = []

    struct Continuation: Sendable {
        var address: UInt64
        var length: Int
    }

    func first(_ type: MessageType) -> HeaderMessage? { messages.first { $0.type == type.rawValue } }
    /// Whether a message of `type` is present (without copying it out, as `first` does).
    func has(_ type: MessageType) -> Bool { messages.contains { $0.type == type.rawValue } }
    func all(_ type: MessageType) -> [HeaderMessage] { messages.filter { $0.type == type.rawValue } }

    static func read(at address: UInt64, in context: FileContext) async throws -> ObjectHeader {
        var header = try await readFirstChunk(at: address, in: context)
        try await header.readContinuations(in: context)
        return header
    }

    static func readFirstChunk(at address: UInt64, in context: FileContext) async throws -> ObjectHeader {
        var cursor = try await context.read(address, context.policy.objectHeaderFirstRead, "object header")
        guard cursor.remaining >= 4 else { throw cursor.error(.truncated, "object header prefix") }
        if cursor.bytes.starts(with: "OHDR".utf8) {
            return try await readVersion2(cursor: &cursor, address: address, context: context)
        }
        return try await readVersion1(cursor: &cursor, address: address, context: context)
    }

    /// Follows continuation blocks until none are left; blocks known at the same time are
    /// fetched together, with `along` (relative ranges the caller reads next) in the first
    /// request.
    mutating func readContinuations(in context: FileContext, fetchingAlong along: [ByteRange] = []) async throws {
        visitedBlocks.insert(address)
        // The blocks a batch holds are fetched together, then read one after the other; the
        // first batch is announced here, each later one as soon as the block naming it arrives.
        context.prefetch(pendingContinuations.map { ByteRange(offset: $0.address, length: $0.length) } + along)
        while !pendingContinuations.isEmpty {
            let batch = pendingContinuations
            pendingContinuations = []
            for block in batch {
                guard visitedBlocks.insert(block.address).inserted else {
                    throw HDF5Error(.cycle, "object header continuation", at: context.absolute(block.address), "continuation block visited twice")
                }
            }
            let version = self.version
            let tracksOrder = tracksCreationOrder
            var parsed: [([HeaderMessage], [Continuation])] = []
            for block in batch {
                let (messages, continuations) = try await Self.readContinuationBlock(
                    block, version: version, tracksOrder: tracksOrder,
                    context: context)
                // A block that arrived early may chain on: its successors are fetched while
                // the rest of the batch is still awaited.
                context.prefetch(continuations.map { ByteRange(offset: $0.address, length: $0.length) })
                parsed.append((messages, continuations))
            }
            for (messages, continuations) in parsed {
                self.messages += messages
                pendingContinuations += continuations
            }
            if messages.count > context.limits.maxMessagesPerHeader {
                throw HDF5Error(.limitExceeded, "object header", at: context.absolute(address), "more than \(context.limits.maxMessagesPerHeader) messages")
            }
        }
    }

    private static func readContinuationBlock(
        _ block: Continuation, version: Int, tracksOrder: Bool,
        context: FileContext
    ) async throws -> ([HeaderMessage], [Continuation]) {
        var cursor = try await context.read(block.address, block.length, "object header continuation")
        guard cursor.bytes.count == block.length else { throw cursor.error(.truncated, "continuation block of \(block.length) bytes") }
        var messages: [HeaderMessage] = []
        messages.reserveCapacity(16)
        if version == 1 {
            let continuations = try parseVersion1Messages(&cursor, into: &messages, context: context)
            return (messages, continuations)
        }
        guard block.length >= 8 else { throw cursor.error(.truncated, "continuation block of \(block.length) bytes") }
        try cursor.signature("OCHK")
        try cursor.seek(to: block.length - 4)
        try cursor.verifyChecksum(from: 0)
        var inner = context.cursor(
            Array(cursor.bytes[4..<(block.length - 4)]), at: context.absolute(block.address) + 4,
            "object header continuation")
        let continuations = try parseVersion2Messages(&inner, tracksOrder: tracksOrder, into: &messages, context: context)
        return (messages, continuations)
    }

    private static func readVersion1(cursor: inout ByteCursor, address: UInt64, context: FileContext) async throws -> ObjectHeader {
        let version = try cursor.u8()
        guard version == 1 else {
            throw HDF5Error(.corrupt, "object header", at: context.absolute(address), "version \(version); expected 1 or an OHDR signature")
        }
        try cursor.skip(1)
        _ = try cursor.u16()
        _ = try cursor.u32()
        let headerSize = Int(try cursor.u32())
        guard headerSize <= context.limits.maxStructureBytes else {
            throw cursor.error(.limitExceeded, "object header claims \(headerSize) bytes")
        }
        let prefix = 16
        if cursor.bytes.count < prefix + headerSize {
            cursor = try await context.read(address, prefix + headerSize, "object header")
        }
        var messages: [HeaderMessage] = []
        messages.reserveCapacity(16)
        var block = context.cursor(
            Array(cursor.bytes[min(prefix, cursor.bytes.count)..<min(prefix + headerSize, cursor.bytes.count)]),
            at: context.absolute(address) + UInt64(prefix), "object header")
        guard block.bytes.count == headerSize else { throw block.error(.truncated, "object header of \(headerSize) bytes") }
        let pending = try parseVersion1Messages(&block, into: &messages, context: context)
        return ObjectHeader(address: address, version: 1, messages: messages, pendingContinuations: pending)
    }

    private static func parseVersion1Messages(
        _ cursor: inout ByteCursor, into messages: inout [HeaderMessage],
        context: FileContext
    ) throws -> [Continuation] {
        var continuations: [Continuation] = []
        while cursor.remaining >= 8 {
            let type = try cursor.u16()
            let size = Int(try cursor.u16())
            let flags = try cursor.u8()
            try cursor.skip(3)
            let origin = cursor.absolutePosition
            let body = try cursor.take(size)
            try cursor.align(to: 8)
            if type == MessageType.continuation.rawValue {
                continuations.append(try continuation(body, origin: origin, context: context))
            } else if type != MessageType.nil_.rawValue {
                messages.append(HeaderMessage(type: type, flags: flags, body: body, origin: origin))
            }
            if messages.count > context.limits.maxMessagesPerHeader { break }
        }
        return continuations
    }

    private static func continuation(_ body: [UInt8], origin: UInt64, context: FileContext) throws -> Continuation {
        var cursor = context.cursor(body, at: origin, "continuation message")
        guard let address = try cursor.address() else { throw cursor.error(.corrupt, "undefined continuation address") }
        let length = try cursor.count(size: context.lengthSize, limit: context.limits.maxStructureBytes, "continuation length")
        return Continuation(address: address, length: length)
    }

    private static func readVersion2(cursor: inout ByteCursor, address: UInt64, context: FileContext) async throws -> ObjectHeader {
        try cursor.signature("OHDR")
        let version = try cursor.u8()
        guard version == 2 else { throw cursor.error(.corrupt, "OHDR version \(version)") }
        let flags = try cursor.u8()
        if flags & 0x20 != 0 { try cursor.skip(16) }
        if flags & 0x10 != 0 { try cursor.skip(4) }
        let chunkSize = try cursor.count(size: 1 << Int(flags & 0x03), limit: context.limits.maxStructureBytes, "header chunk size")
        let messagesStart = cursor.position
        let total = messagesStart + chunkSize + 4
        if cursor.bytes.count < total {
            cursor = try await context.read(address, total, "object header")
            guard cursor.bytes.count == total else { throw cursor.error(.truncated, "object header of \(total) bytes") }
        }
        // The checksum covers the header from its signature: checked in the bytes as read
        // (they start at `address`), without a copy.
        var whole = cursor
        try whole.seek(to: total - 4)
        try whole.verifyChecksum(from: 0)
        var messages: [HeaderMessage] = []
        messages.reserveCapacity(16)
        var block = context.cursor(
            Array(cursor.bytes[messagesStart..<(messagesStart + chunkSize)]),
            at: context.absolute(address) + UInt64(messagesStart), "object header")
        let tracksOrder = flags & 0x04 != 0
        let pending = try parseVersion2Messages(&block, tracksOrder: tracksOrder, into: &messages, context: context)
        return ObjectHeader(
            address: address, version: 2, messages: messages, pendingContinuations: pending,
            tracksCreationOrder: tracksOrder)
    }

    private static func parseVersion2Messages(
        _ cursor: inout ByteCursor, tracksOrder: Bool, into messages: inout [HeaderMessage],
        context: FileContext
    ) throws -> [Continuation] {
        var continuations: [Continuation] = []
        let headerSize = tracksOrder ? 6 : 4
        while cursor.remaining >= headerSize {
            let type = UInt16(try cursor.u8())
            let size = Int(try cursor.u16())
            let flags = try cursor.u8()
            if tracksOrder { _ = try cursor.u16() }
            let origin = cursor.absolutePosition
            let body = try cursor.take(size)
            if type == MessageType.continuation.rawValue {
                continuations.append(try continuation(body, origin: origin, context: context))
            } else if type != MessageType.nil_.rawValue {
                messages.append(HeaderMessage(type: type, flags: flags, body: body, origin: origin))
            }
            if messages.count > context.limits.maxMessagesPerHeader { break }
        }
        return continuations
    }
}

extension FileContext {
    /// The body of a message, fetched from where a shared message points when it is shared.
    func resolve(_ message: HeaderMessage, depth: Int = 0) async throws -> ByteCursor {
        guard message.isShared else { return cursor(message.body, at: message.origin, "message \(message.type)") }
        guard depth < 8 else { throw HDF5Error(.limitExceeded, "shared message", at: message.origin, "shared messages chained too deep") }
        var reference = cursor(message.body, at: message.origin, "shared message")
        switch try SharedMessageReference.parse(&reference) {
        case .objectHeader(let address):
            let header = try await ObjectHeader.read(at: address, in: self)
            guard let target = header.messages.first(where: { $0.type == message.type }) else {
                throw HDF5Error(
                    .corrupt, "shared message", at: message.origin,
                    "object header at \(absolute(address)) has no message of type \(message.type)")
            }
            return try await resolve(target, depth: depth + 1)
        case .sharedHeap(let heapID):
            // An index's type flags have bit N set for message type N (libhdf5's H5O_SHMESG_*_FLAG).
            let mask: UInt16 = message.type < 16 ? UInt16(1) << message.type : 0
            guard let heap = sharedMessageHeaps.first(where: { $0.typeMask & mask != 0 }) else {
                throw HDF5Error(
                    .corrupt, "shared message", at: message.origin,
                    "message type \(message.type) is in the shared-message heap but the file has no index for it")
            }
            let fractal = try await FractalHeap.open(at: heap.heapAddress, in: self)
            let bytes = try await fractal.object(id: heapID)
            return cursor(bytes, at: message.origin, "shared message heap object")
        }
    }
}
