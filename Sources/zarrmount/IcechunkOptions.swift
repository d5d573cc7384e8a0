import ArgumentParser
import Icechunk

/// The repository and snapshot flags of `mount --icechunk` and `info --icechunk`.
struct IcechunkOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "An Icechunk repository (a local directory, or s3://bucket/prefix) instead of sources or a manifest: the snapshot of --branch (default main), --tag or --snapshot.",
            valueName: "dir"))
    var icechunk: String?

    @Option(help: ArgumentHelp("With --icechunk: the branch whose latest snapshot to use (default main).", valueName: "name"))
    var branch: String?

    @Option(help: ArgumentHelp("With --icechunk: the tag whose snapshot to use.", valueName: "name"))
    var tag: String?

    @Option(help: ArgumentHelp("With --icechunk: the snapshot to use, by id.", valueName: "id"))
    var snapshot: String?

    func validate() throws {
        if icechunk == nil, branch != nil || tag != nil || snapshot != nil {
            throw ValidationError("--branch, --tag and --snapshot go with --icechunk")
        }
        guard [branch, tag, snapshot].compactMap({ $0 }).count <= 1 else { throw ValidationError("give one of --branch, --tag and --snapshot") }
    }

    var reference: IcechunkReference { tag.map { .tag($0) } ?? snapshot.map { .snapshot($0) } ?? .branch(branch ?? "main") }
}
