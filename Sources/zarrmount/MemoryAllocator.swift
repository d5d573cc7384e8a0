import CJemalloc

/// Which allocator serves this process's `malloc`, for `--version`.
///
/// The executable links jemalloc for speed (README, "Memory allocator"). Whether its `malloc`
/// really replaced glibc's depends on the dynamic linker's lookup order, so this checks the
/// running process rather than trusting the link line.
enum MemoryAllocator {
    static var description: String {
        guard let version = CJemalloc_version().map({ String(cString: $0) }) else {
            return "glibc malloc (jemalloc is linked but did not answer)"
        }
        let release = version.split(separator: "-").first.map(String.init) ?? version
        return CJemalloc_serves_malloc() != 0
            ? "jemalloc \(release)"
            : "glibc malloc (jemalloc \(release) is linked but does not serve malloc)"
    }

    /// Freed memory goes back to the system within a second (see the shim for why); called first
    /// thing in every zarrmount process. A refusal (another allocator serves malloc) changes
    /// nothing else.
    static func returnFreedMemoryPromptly() {
        _ = CJemalloc_return_freed_memory_within(1000)
    }
}
