import VirtualZarr

/// Whether parts are the shards of one listing, and their files in listing order.
public enum ShardSet {
    public struct Problem: Error, CustomStringConvertible {
        public var description: String
    }

    public static func check(_ shards: [ManifestFile.ShardParts], names: [String]) -> Result<ScannedParts, Problem> {
        guard let first = shards.first else { return .failure(Problem(description: "no parts given")) }
        let count = first.shard.count
        var byIndex: [Int: Int] = [:]
        for (position, shard) in shards.enumerated() {
            guard shard.shard.count == count, shard.listedFiles == first.listedFiles else {
                return .failure(
                    Problem(
                        description:
                            "\(names[position]) is shard \(shard.shard.index)/\(shard.shard.count) of a listing of \(shard.listedFiles) files, but \(names[0]) is \(first.shard.index)/\(count) of \(first.listedFiles): the parts come from different scans"
                    ))
            }
            if let earlier = byIndex[shard.shard.index] {
                return .failure(Problem(description: "\(names[earlier]) and \(names[position]) are both shard \(shard.shard.index)/\(count)"))
            }
            byIndex[shard.shard.index] = position
        }
        let missing = (0..<count).filter { byIndex[$0] == nil }
        if !missing.isEmpty {
            let list = missing.prefix(10).map { "\($0)/\(count)" }.joined(separator: ", ")
            return .failure(
                Problem(description: "shard\(missing.count == 1 ? "" : "s") \(list)\(missing.count > 10 ? ", ..." : "") missing: give every part of the scan"))
        }
        var parts: [(name: String, dataset: VirtualDataset)] = []
        var skipped: [(file: String, reason: String)] = []
        for index in 0..<count {
            let shard = shards[byIndex[index]!]
            parts += shard.parts
            skipped += shard.skipped
        }
        return .success(ScannedParts(parts: parts, skipped: skipped, listedFiles: first.listedFiles))
    }
}
