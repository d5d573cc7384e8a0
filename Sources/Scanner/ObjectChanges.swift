import ObjectStore
import VirtualZarr

/// Whether the objects a manifest recorded are still what it recorded: `zarrmount info --check`
/// and `scan --update` ask the same question.
public enum ObjectChanges {
    /// How an object listed now differs from the manifest's record of it, or nil if it does not.
    public static func difference(recorded: ObjectInfo, now: ListedObject) -> String? {
        if now.size != recorded.size { return "\(recorded.size) bytes at the scan, \(now.size) now" }
        if let identity = recorded.identity, now.identity != identity {
            return "identity \(identity.encoded) at the scan, \(now.identity?.encoded ?? "none") now"
        }
        return nil
    }

    /// Every object of `objects` that changed or is gone, listed again one by one: a line each,
    /// `URL: what changed`, in the manifest's order.
    public static func check(_ objects: [ObjectInfo], store: RemoteStore) async -> [String] {
        var changed: [String] = []
        for object in objects {
            do {
                guard let now = try await store.list([object.url]).first else {
                    changed.append("\(object.url): not found")
                    continue
                }
                if let difference = difference(recorded: object, now: now) { changed.append("\(object.url): \(difference)") }
            } catch {
                changed.append("\(object.url): cannot be listed (\(error))")
            }
        }
        return changed
    }
}
