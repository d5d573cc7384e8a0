import ByteSource
import Synchronization

extension Traversal {
    /// Datasets parsed before the links that name them have been read.
    ///
    /// A netCDF-4 file keeps the root group's links in a fractal heap three dependent reads
    /// beyond the root header (the heap header, its indirect block, its direct blocks). But the
    /// dimension scales are defined first, so their headers sit in the file's first bytes, and
    /// their `REFERENCE_LIST` attributes hold the header address of every variable. Parsing
    /// those as soon as the first read has arrived takes two rounds off the chain that ends in
    /// the chunk tables: 6 → 4 on a WRF-like file.
    ///
    /// A guess is used only when the traversal reaches its address through a link, and it is
    /// then the very parse the traversal would have made (the same functions on the same
    /// bytes): a wrong guess costs reads, never results. The guesses are version-2 object
    /// headers found by signature and checksum in the first `ReadPolicy.earlyScanBytes`, then
    /// the objects their attributes reference. Groups are left to the traversal.
    final class EarlyDatasets: Sendable {
        struct Parsed: Sendable {
            var discovered: Discovered
            var round: Int
        }

        private enum Entry {
            case traversal
            case parsing(Task<Parsed?, Never>)
        }

        private struct State {
            var entries: [UInt64: Entry] = [:]
            var guesses = 0
            var cancelled = false
        }

        /// Bounds the work a file full of header signatures and references can cause.
        static let maxGuesses = 4096

        private let state = Mutex(State())
        private let context: FileContext
        private let enabled: Bool

        init(context: FileContext) {
            self.context = context
            // Reading one object at a time (local files), a wrong guess costs as much as the
            // read it would save, and there are no rounds to save.
            enabled = context.policy.concurrentReads && context.policy.earlyScanBytes > 0
        }

        /// Starts an early parse of every dataset header in the file's first bytes. Their first
        /// reads join the traversal's second round: a file's tasks take turns on one serial
        /// executor, and the block cache holds a batch open for a few turns. (They were once
        /// rehearsed on cached bytes first to announce those reads; with the serial executor
        /// that changed no request and no round, and cost 6 % of the scan's allocations.)
        func begin(skipping root: UInt64) async {
            guard enabled else { return }
            let available = context.fileSize - min(context.base, context.fileSize)
            let length = Int(min(UInt64(context.policy.earlyScanBytes), available))
            guard length > 0, let bytes = try? await context.source.read(offset: context.base, length: length) else { return }
            let addresses = Self.signatures(in: bytes).filter { $0 != root }
            guard !addresses.isEmpty else { return }
            start(addresses, atRound: ReadRounds.clock?.current ?? 0, followingReferences: true)
        }

        /// Stops guesses nobody will need (the traversal is over).
        func cancel() {
            guard enabled else { return }
            let tasks = state.withLock { state -> [Task<Parsed?, Never>] in
                state.cancelled = true
                return state.entries.values.compactMap { entry in
                    if case .parsing(let task) = entry { return task }
                    return nil
                }
            }
            for task in tasks { task.cancel() }
        }

        /// The traversal has reached `address`: the early parse of it, when there is one.
        /// Otherwise the traversal parses the object itself, and no guess for it starts later.
        func claim(_ address: UInt64) -> Task<Parsed?, Never>? {
            guard enabled else { return nil }
            return state.withLock { state in
                if case .parsing(let task)? = state.entries[address] { return task }
                state.entries[address] = .traversal
                return nil
            }
        }

        /// An early parse's result (`nil`: the address holds no readable dataset); the caller's
        /// clock moves to the round it finished in.
        static func result(of task: Task<Parsed?, Never>) async -> Discovered? {
            guard let parsed = await task.value else { return nil }
            ReadRounds.clock?.advance(to: parsed.round)
            return parsed.discovered
        }

        /// Starts an early parse of each address nobody has parsed or claimed yet, their header
        /// reads announced together so that they travel in one request. With
        /// `followingReferences`, each parse then starts the objects its attributes reference
        /// (the first dimension scale to arrive names most variables), from its own task.
        private func start(_ addresses: [UInt64], atRound round: Int, followingReferences: Bool = false) {
            var seen = Set<UInt64>()
            let fresh = state.withLock { state in addresses.filter { state.entries[$0] == nil && seen.insert($0).inserted } }
            guard !fresh.isEmpty else { return }
            let context = self.context
            context.prefetch(fresh, length: context.policy.objectHeaderFirstRead)
            state.withLock { state in
                guard !state.cancelled else { return }
                for address in fresh where state.entries[address] == nil && state.guesses < Self.maxGuesses {
                    let task = Task(executorPreference: SerialTaskExecutor.current) { [self] () -> Parsed? in
                        let clock = RoundClock(startingAt: round)
                        let discovered = await ReadRounds.$clock.withValue(clock) { await Self.parseDataset(at: address, in: context) }
                        guard let discovered else { return nil }
                        if followingReferences, case .dataset(let dataset)? = discovered.details {
                            var references: [UInt64] = []
                            for attribute in dataset.attributes {
                                for value in attribute.values { value.appendReferencedAddresses(to: &references) }
                            }
                            if !references.isEmpty { start(references, atRound: clock.current) }
                        }
                        return Parsed(discovered: discovered, round: clock.current)
                    }
                    state.entries[address] = .parsing(task)
                    state.guesses += 1
                }
            }
        }

        /// The traversal's own parse of a dataset's header, or `nil` when the address holds no
        /// readable dataset (the traversal then finds out for itself what is there).
        private static func parseDataset(at address: UInt64, in context: FileContext) async -> Discovered? {
            guard let firstChunk = try? await ObjectHeader.readFirstChunk(at: address, in: context),
                !firstChunk.has(.symbolTable), !firstChunk.has(.linkInfo), !firstChunk.has(.link),
                let completed = try? await Traversal.complete(firstChunk, in: context),
                completed.header.has(.layout)
            else { return nil }
            let details = await Traversal.datasetDetails(
                completed.header, address: address, earlyChunks: completed.earlyChunks,
                in: context)
            return Discovered(address: address, kind: .dataset, details: details)
        }

        /// Relative addresses of every `OHDR` signature in the file's first bytes. A false match
        /// fails the header checksum when parsed.
        static func signatures(in bytes: [UInt8]) -> [UInt64] {
            guard bytes.count >= 4 else { return [] }
            var found: [UInt64] = []
            // One unaligned 32-bit load per position instead of four checked subscripts: this
            // scans the first 16 KiB of every file.
            let signature = UInt32(littleEndian: 0x5244_484F)  // "OHDR"
            bytes.withUnsafeBytes { raw in
                for index in 0...(raw.count - 4) where raw.loadUnaligned(fromByteOffset: index, as: UInt32.self) == signature {
                    found.append(UInt64(index))
                }
            }
            return found
        }
    }
}
