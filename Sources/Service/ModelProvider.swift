import AutoSAM
import CardiacImaging
import Foundation
import Tensor

/// No head can be served (none configured, none in the store, no embedded default).
public struct ModelUnavailable: Error, CustomStringConvertible {
    public var description: String
}

/// The head the daemon serves, chosen in this order: the model store's current version
/// (`paths.models`), else the head folder named by `model.head`, else the embedded default.
/// The encoder is loaded once; the head is reloaded when the store's current version changes.
final class ModelProvider: @unchecked Sendable {
    let config: ServiceConfig
    private(set) var encoder: FrozenEncoder?
    private var serving: ServingModel?
    private var servingKey = ""
    /// The store version served, nil when serving model.head or the embedded default.
    private(set) var storeVersionServed: String?

    /// Replaces the head's labelling of a frame when set, everything else unchanged. The
    /// service's tests put a reference segmentation here, so that what follows the head
    /// (geometry, stats, outputs) is checked against phantom truth on its own.
    var frameLabeller: ((Volume) throws -> LabelMap)?

    init(config: ServiceConfig) { self.config = config }

    var version: String { serving?.version ?? "none" }

    /// Loads the encoder and the current head; an error here stops the daemon at start.
    func load(log: ServiceLog) throws {
        let t = Date()
        do {
            encoder = try FrozenEncoder(source: config.encoder, precision: config.precision)
        } catch {
            throw ModelUnavailable(description: "cannot load the encoder '\(config.encoder)': \(error)")
        }
        log.info(String(format: "encoder %@ loaded in %.1f s, precision %@", encoder!.config.name, Date().timeIntervalSince(t),
                        encoder!.precision.effective.rawValue))
        if let note = encoder!.precision.note { log.warning(note) }
        try refresh(log: log)
    }

    func current() throws -> ServingModel {
        guard var s = serving else { throw ModelUnavailable(description: "no head is loaded") }
        if let frameLabeller { s.labelFrame = { (try frameLabeller($0), nil, nil) } }
        return s
    }

    /// Reloads when the store's current version changed; keeps the old head on failure.
    func refreshIfChanged(log: ServiceLog) {
        guard let (key, _) = try? currentSource(), key != servingKey else { return }
        do { try refresh(log: log) } catch {
            log.error("keeping head \(version): cannot load the new one: \(error)")
        }
    }

    private func refresh(log: ServiceLog) throws {
        guard let encoder else { throw ModelUnavailable(description: "the encoder is not loaded") }
        let (key, load) = try currentSource()
        let (head, meta, version) = try load()
        let seg: Segmenter
        do { seg = try Segmenter(head: head, metadata: meta, encoder: encoder) } catch {
            throw ModelUnavailable(description: "head \(version) does not fit the configured encoder: \(error)")
        }
        serving = ServingModel(segmenter: seg, version: version)
        servingKey = key
        storeVersionServed = key.hasPrefix("store:") ? version : nil
        log.info("serving head \(version)")
    }

    typealias Loader = () throws -> (SegmentationHead, HeadMetadata, String)

    /// A key that changes when the head to serve changes, and how to load it.
    private func currentSource() throws -> (String, Loader) {
        if let store = try storeCurrent() { return store }
        if !config.head.isEmpty {
            let path = config.head
            return ("head:" + path, {
                do {
                    let (h, m) = try HeadModel.load(path)
                    return (h, m, "file:" + (path as NSString).lastPathComponent)
                } catch { throw ModelUnavailable(description: "cannot load the head at \(path): \(error)") }
            })
        }
        if let d = embeddedDefault() { return d }
        throw ModelUnavailable(description: "no head: the model store at \(config.modelsPath) has no current version, model.head is empty, and this build has no embedded default head")
    }

    /// The head `watch` would serve, in words, without loading anything heavy (for `status`).
    static func describeCurrent(config: ServiceConfig) -> String {
        if let v = storeVersion(config: config) { return "store version \(v)" }
        if !config.head.isEmpty { return "file:" + (config.head as NSString).lastPathComponent + " (model.head)" }
        return hasEmbeddedDefault ? "embedded default" : "none"
    }

    static func storeVersion(config: ServiceConfig) -> String? {
        guard FileManager.default.fileExists(atPath: config.modelsPath) else { return nil }
        return try? ModelStore(root: config.modelsPath).current()
    }
    static var hasEmbeddedDefault: Bool { (try? DefaultModel.directory()) != nil }

    /// The model store's current version, if it has one.
    private func storeCurrent() throws -> (String, Loader)? {
        let store = try ModelStore(root: config.modelsPath)
        guard let v = try store.current(encoder: encoder?.identity) else { return nil }
        return ("store:" + v, {
            let m = try store.load(v)
            return (m.head, m.metadata, v)
        })
    }

    /// The head embedded in the binary (trained on the demo encoder).
    private func embeddedDefault() -> (String, Loader)? {
        guard let dir = try? DefaultModel.directory() else { return nil }
        return ("default:" + dir, {
            let (h, m) = try HeadModel.load(dir)
            return (h, m, "embedded-default")
        })
    }
}
