import AutoSAM
import CardiacImaging
import Foundation

/// The annotate-then-refit loop: labelled volumes from the labels folder go into the training
/// store; refits run when the policy says so and no study waits, and pause (by segmenting the
/// waiting studies) between their epochs when studies arrive.
extension ServiceDaemon {
    func labelEntries() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: config.labelsPath)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }

    /// Takes every labelled item that is complete (marker, or quiet for the quiet period).
    /// Returns whether one was handled.
    func intakeLabels() throws -> Bool {
        let now = Self.monotonic()
        var seen = Set<String>()
        var handled = false
        for name in labelEntries() {
            seen.insert(name)
            let path = config.labelsPath + "/" + name
            guard let fp = Fingerprint.of(path) else { continue }
            let marked = fp.isDirectory && FileManager.default.fileExists(atPath: path + "/" + config.marker)
            if labelTracker[name]?.0 != fp.digest { labelTracker[name] = (fp.digest, now) }
            if marked || now - labelTracker[name]!.1 >= config.quietPeriod {
                labelTracker[name] = nil
                // Workers sharing a queue see the same labels folder: one takes each item.
                handled = try journal.exclusive("labels") {
                    guard EntryType.of(path) != nil else { return false }
                    try takeLabelled(name)
                    return true
                } || handled
                if try journal.waitingCount(now: retryWindow.now, latest: retryWindow.latest) > 0 { break }
            }
        }
        for k in labelTracker.keys where !seen.contains(k) { labelTracker[k] = nil }
        return handled
    }

    func trainingStore() throws -> TrainingStore {
        try TrainingStore(root: config.trainingPath, validationPoolSize: max(1, config.refitValidationVolumes))
    }

    /// Validates one labelled item and adds its volumes to the training store (ED/ES pairs form
    /// one case); the item goes to `archive/labels/` (or `failed/labels/` with reason.txt).
    func takeLabelled(_ name: String) throws {
        let path = config.labelsPath + "/" + name
        do {
            let volumes = try LabelIntake.read(path, rules: config.seriesRules, marker: config.marker)
            let store = try trainingStore()
            var i = 0
            while i < volumes.count {
                let ed = volumes[i], es = i + 1 < volumes.count ? volumes[i + 1] : nil
                try store.add(ed: (ed.image, ed.labels), es: es.map { ($0.image, $0.labels) }, source: ed.source)
                i += 2
            }
            let id = try journal.recordLabel(name: name, accepted: true, volumes: volumes.count, reason: nil)
            try moveAside(path, into: config.archivePath + "/labels", name: name)
            log.info("labelled item #\(id): \(volumes.count) volume(s) added to the training store")
        } catch {
            let reason = "\(error)"
            let names = Self.namesInside(path)
            let id = try journal.recordLabel(name: name, accepted: false, volumes: 0, reason: reason)
            let dest = try? moveAside(path, into: config.failedPath + "/labels", name: name)
            if let dest {
                try? AtomicFile.write("Labelled item: \(name)\nRefused: \(ISO8601DateFormatter().string(from: Date()))\nReason: \(reason)\n\nFix it and drop it into the labels folder again.\n", to: dest + "/reason.txt")
            } else {
                try? FileTree.remove(path)
            }
            let logged = Self.hidingNames(reason, names).replacingOccurrences(of: name, with: "<item #\(id)>")
            log.warning("labelled item #\(id) refused: \(logged)")
        }
    }

    /// Moves `path` to `<folder>/<name>/<name>` and returns `<folder>/<name>` (made unique).
    @discardableResult
    func moveAside(_ path: String, into folder: String, name: String) throws -> String {
        let fm = FileManager.default
        var dest = folder + "/" + name
        var n = 2
        while fm.fileExists(atPath: dest) { dest = folder + "/\(name)-\(n)"; n += 1 }
        try fm.createDirectory(atPath: dest, withIntermediateDirectories: true)
        try moveItem(path, dest + "/" + name)
        return dest
    }

    /// Whether a study waits (claimed in the journal, or in the inbox).
    func studiesWaiting() -> Bool {
        ((try? journal.waitingCount(now: retryWindow.now, latest: retryWindow.latest)) ?? 0) > 0 || !inboxEntries().isEmpty
    }

    /// Runs a refit when the policy calls for one and nothing waits. Returns whether one ran.
    func maybeRefit() throws -> Bool {
        guard config.refitEnabled else { return false }
        let pending = try journal.pendingLabelledVolumes()
        guard pending > 0 else { return false }
        var due = config.refitEveryVolumes > 0 && pending >= config.refitEveryVolumes
        if !due, config.refitIntervalHours > 0 {
            let last = try journal.lastRefitFinished() ?? 0, now = wallClock()
            // A last refit in the future means the clock was set back: due, not waiting for it.
            due = now - last >= config.refitIntervalHours * 3600 || last > now + 60
        }
        guard due, !studiesWaiting() else { return false }
        return try runRefit(volumes: pending)
    }

    /// Runs one refit; false when another worker sharing the queue runs one.
    @discardableResult
    func runRefit(volumes: Int) throws -> Bool {
        guard let id = try journal.beginRefit(volumes: volumes) else {
            log.debug("a refit is running on another worker")
            return false
        }
        state.status = "refitting (refit #\(id))"
        notifier.status(state.status)
        log.info("refit #\(id): \(volumes) new labelled volume(s)")
        do {
            let serving = try models.current()
            guard let encoder = models.encoder else { throw ModelUnavailable(description: "the encoder is not loaded") }
            let current = VersionedHead(
                version: models.storeVersionServed, head: serving.segmenter.head, metadata: serving.segmenter.metadata)
            var options = RefitOptions()
            options.training.epochs = config.refitEpochs
            options.training.minimumEpochSamples = config.refitEpochSamples
            options.tolerance = config.refitTolerance
            let outcome = try Refit.run(
                training: try trainingStore(), models: try ModelStore(root: config.modelsPath), current: current, encoder: encoder,
                cache: try EmbeddingCache(folder: config.cachePath), options: options,
                yield: { [self] checkpoint in
                    // Segmentation first: studies that arrived are done now, then training goes on.
                    FaultInjection.point("refit.training")
                    state.heartbeat()
                    if state.stopRequested { return .abort }
                    while studiesWaiting() && !state.stopRequested {
                        try? scanInbox()
                        if (try? processNext()) != true { sleepInterruptibly(config.pollInterval) }
                        state.status = "refitting (refit #\(id), \(checkpoint))"
                    }
                    return state.stopRequested ? .abort : .proceed
                },
                log: { [log] in log.debug($0) })
            let result: String
            switch outcome.result {
            case .promoted: result = "promoted"
            case .accepted: result = "accepted"
            case .rejected: result = "rejected"
            case .skipped: result = "skipped"
            case .aborted: result = "aborted"
            }
            try journal.finishRefit(id, outcome: result, candidate: outcome.version, detail: outcome.reason, consumed: result != "aborted")
            log.info(String(format: "refit #%lld %@ in %.1f s: %@", id, result, outcome.seconds, outcome.reason))
            models.refreshIfChanged(log: log)
        } catch {
            try journal.finishRefit(id, outcome: "failed", candidate: nil, detail: "\(error)", consumed: true)
            log.error("refit #\(id) failed: \(error)")
        }
        state.status = "idle"
        return true
    }
}
