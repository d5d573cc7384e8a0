import ByteSource
import Dispatch
import NetCDF3
import NetCDF3Mapping
import VirtualZarr

/// libFuzzer entry point: any byte string must parse or fail with a typed error, never crash,
/// hang or exhaust memory (libFuzzer's -timeout and -rss_limit_mb enforce the last two). A
/// header that parses is also mapped, coordinates inlined, so the mapping sees hostile
/// headers too.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: count))
    let done = DispatchSemaphore(value: 0)
    Task {
        do {
            // A small first read, so inputs of any size exercise the re-reads.
            let header = try await NetCDF3File.parse(InMemorySource(name: "fuzz-input", bytes: bytes), firstReadBytes: 256)
            var options = MappingOptions()
            options.inlineComparedValues = true
            options.contiguousSplitThreshold = 4096
            let fetch: ByteFetcher = { offset, length in
                guard offset <= UInt64(bytes.count), length <= bytes.count - Int(offset) else {
                    throw ByteSourceError(.outOfRange, source: "fuzz-input", offset: offset, length: length)
                }
                return Array(bytes[Int(offset)..<(Int(offset) + length)])
            }
            // The mapping may refuse a variable or fail a read past the input; it must not crash.
            _ = try? await NetCDF3Mapping.dataset(from: header, objectID: 0, options: options, fetch: fetch)
        } catch {
            // NetCDF3FileError: the expected outcome for most inputs (typed throws: nothing else
            // can arrive here).
        }
        done.signal()
    }
    done.wait()
    return 0
}
