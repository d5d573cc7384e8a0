import ByteSource
import Dispatch
import HDF5Metadata

/// libFuzzer entry point: any byte string must parse or fail with a typed error, never crash,
/// hang or exhaust memory (libFuzzer's -timeout and -rss_limit_mb enforce the last two).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: count))
    let done = DispatchSemaphore(value: 0)
    Task {
        do {
            _ = try await HDF5File.parse(InMemorySource(name: "fuzz-input", bytes: bytes))
        } catch is HDF5FileError {
            // The expected outcome for most inputs.
        } catch {
            fatalError("untyped error escaped the parser: \(error)")
        }
        done.signal()
    }
    done.wait()
    return 0
}
