import ArgumentParser
import AutoSAM
import Foundation

/// `autosam model list | promote VERSION | rollback`: the head versions of a model store.
struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model", abstract: "List, promote and roll back the head versions of a model store.",
        subcommands: [ModelListCommand.self, ModelPromoteCommand.self, ModelRollbackCommand.self])
}

struct ModelStoreOptions: ParsableArguments {
    @Option(help: "Model store folder (v0001/, v0002/, ... and the 'current' pointer).") var store: String

    func open() throws -> ModelStore {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: store, isDirectory: &isDir), isDir.boolValue else {
            throw ValidationError("no model store folder at \(store)")
        }
        return try ModelStore(root: store)
    }

    static func name(_ v: String?) -> String { v ?? "the embedded default" }
}

struct ModelListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the versions with their scores and decisions.")

    @OptionGroup var options: ModelStoreOptions

    func run() throws {
        let store = try options.open()
        let current = try store.current()
        let versions = try store.versions()
        if versions.isEmpty { print("no versions in \(store.root)") }
        for v in versions {
            let mark = v == current ? "*" : " "
            do {
                let m = try store.metrics(v)
                let score = m.validation.map { String(format: "Dice %.4f", $0.meanDice) } ?? "Dice -"
                let before = m.parentValidation.map { String(format: " (parent %@ %.4f)", ModelStoreOptions.name(m.parent), $0.meanDice) } ?? ""
                let classes = m.validation.map { " [" + $0.classes.map { String(format: "%@ %.3f", $0.name, $0.dice) }.joined(separator: ", ") + "]" } ?? ""
                print("\(mark) \(v)  \(m.created)  \(m.decision.status.rawValue)  \(score)\(before)\(classes)  "
                    + "train \(m.trainingCases.count) case(s) / \(m.trainingVolumes) frame(s), pool \(m.validationCases.count), \(m.epochs ?? 0) epochs")
                print("    \(m.decision.reason)")
            } catch {
                print("\(mark) \(v)  unreadable: \(error)")
            }
        }
        print("current: \(ModelStoreOptions.name(current))")
    }
}

struct ModelPromoteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "promote", abstract: "Make a version current (the one it replaces can be rolled back to).")

    @OptionGroup var options: ModelStoreOptions
    @Argument(help: "The version to make current, e.g. v0003.") var version: String
    @Flag(help: "Allow a version trained on another encoder than the current version's.") var allowEncoderChange = false

    func run() throws {
        let store = try options.open()
        let before = try store.current()
        let encoder = try allowEncoderChange ? store.metrics(version).encoder : nil
        try store.promote(version, encoder: encoder, reason: "manual (autosam model promote)")
        print("current: \(version) (was \(ModelStoreOptions.name(before)))")
    }
}

struct ModelRollbackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rollback", abstract: "Return to the version that was current before this one.")

    @OptionGroup var options: ModelStoreOptions

    func run() throws {
        let store = try options.open()
        let before = try store.current()
        let now = try store.rollback()
        print("current: \(ModelStoreOptions.name(now)) (was \(ModelStoreOptions.name(before)))")
    }
}
