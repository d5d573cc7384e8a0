#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Every syscall the module makes goes through here, so tests can reason about the core without
/// the kernel and the list of what we ask of the OS stays in one place.
enum SystemCalls {
    static func openReadOnly(_ path: String) -> (fd: Int32, errno: Int32) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        return (fd, fd < 0 ? errno : 0)
    }

    static func fileSize(_ fd: Int32) -> (size: UInt64, errno: Int32) {
        var info = stat()
        if fstat(fd, &info) != 0 { return (0, errno) }
        return (UInt64(info.st_size), 0)
    }

    /// Reads until `count` bytes arrived or the file ended; retries EINTR and short reads.
    static func preadFully(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) -> (count: Int, errno: Int32) {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                return (done, errno)
            }
            if n == 0 { break }
            done += n
        }
        return (done, 0)
    }

    static func closeDescriptor(_ fd: Int32) {
        _ = close(fd)
    }
}

enum SystemErrorText {
    static func describe(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "errno \(code)" }
        return String(cString: text)
    }
}
