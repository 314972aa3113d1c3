import ArgumentParser
import CardiacImaging
import Foundation

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Volumetric stats (EDV, ESV, SV, EF, LV mass, BSA-indexed) from ED/ES label maps.",
        discussion: """
            Give an ACDC-layout folder (or one patient folder) to report on every patient's ED and ES \
            ground truth (_gt), or --ed and --es label maps. With --check-truth, patients that carry a \
            phantom_truth.json are compared with their analytic volumes (LV EDV/ESV within 5%, EF within \
            3 points) and the command fails if any is outside.
            """)

    @Argument(help: "ACDC-layout dataset folder or patient folder.") var data: String?
    @Option(help: "ED label map (instead of a dataset).") var ed: String?
    @Option(help: "ES label map (instead of a dataset).") var es: String?
    @Option(help: "Height in cm (for BSA), with --ed/--es.") var height: Double?
    @Option(help: "Weight in kg (for BSA), with --ed/--es.") var weight: Double?
    @Option(help: "Write a cohort CSV (one row per patient) here.") var csv: String?
    @Option(help: "Write one JSON report per patient into this folder.") var jsonDir: String?
    @Flag(help: "Print the JSON report (single pair).") var json = false
    @Flag(help: "Compare with phantom_truth.json and fail outside 5% volume / 3 EF points.") var checkTruth = false

    func validate() throws {
        if data == nil && (ed == nil || es == nil) { throw ValidationError("give a dataset folder, or both --ed and --es") }
        if data != nil && (ed != nil || es != nil) { throw ValidationError("give either a dataset folder or --ed/--es, not both") }
    }

    func run() throws {
        if let ed, let es {
            let edMap = try NIfTI.readLabelMap(ed), esMap = try NIfTI.readLabelMap(es)
            let r = try ClinicalStats.report(ed: edMap, es: esMap, heightCm: height, weightKg: weight)
            if json {
                print(String(decoding: try r.jsonData(), as: UTF8.self))
            } else {
                print(Self.tableHeader)
                print(Self.tableRow(name: "pair", r))
            }
            return
        }
        try runDataset(data!)
    }

    static let tableHeader = String(
        format: "%-12@ %8@ %8@ %8@ %6@ %8@ %8@ %8@ %6@ %8@", "patient", "LV EDV", "LV ESV", "LV SV", "LV EF",
        "mass g", "RV EDV", "RV ESV", "RV EF", "flags")

    static func tableRow(name: String, _ r: FunctionReport) -> String {
        String(
            format: "%-12@ %8.1f %8.1f %8.1f %6.1f %8.1f %8.1f %8.1f %6.1f %@", name, r.lv.edv, r.lv.esv, r.lv.sv,
            r.lv.ef ?? .nan, r.lvMass, r.rv.edv, r.rv.esv, r.rv.ef ?? .nan, r.flags.map(\.rawValue).joined(separator: ";"))
    }

    private func runDataset(_ folder: String) throws {
        let patients: [ACDCPatient]
        if FileManager.default.fileExists(atPath: folder + "/Info.cfg") {
            patients = [try ACDCPatient(folder: folder)]
        } else {
            patients = try ACDCDataset.patients(in: folder)
        }
        if let jsonDir { try FileManager.default.createDirectory(atPath: jsonDir, withIntermediateDirectories: true) }
        var rows = [FunctionReport.csvHeader]
        var failures: [String] = []
        var worstVolume = 0.0, worstEF = 0.0, checked = 0
        print(Self.tableHeader)
        for p in patients {
            guard p.hasLabels(frame: p.info.ed), p.hasLabels(frame: p.info.es) else {
                print("\(p.id): no ED/ES ground truth, skipped")
                continue
            }
            let ed = try NIfTI.readLabelMap(p.labelPath(frame: p.info.ed))
            let es = try NIfTI.readLabelMap(p.labelPath(frame: p.info.es))
            let r = try ClinicalStats.report(
                ed: ed, es: es, heightCm: p.info.heightCm, weightKg: p.info.weightKg, subject: p.id,
                edFrame: p.info.ed, esFrame: p.info.es)
            print(Self.tableRow(name: p.id, r))
            rows.append(r.csvRow)
            if let jsonDir { try AtomicFile.write(try r.jsonData(), to: "\(jsonDir)/\(p.id).json") }
            let truthPath = p.folder + "/phantom_truth.json"
            if checkTruth, FileManager.default.fileExists(atPath: truthPath) {
                let e = try PhantomTruth.read(truthPath).lvErrors(edv: r.lv.edv, esv: r.lv.esv, ef: r.lv.ef)
                worstVolume = max(worstVolume, e.volume)
                worstEF = max(worstEF, e.ef)
                checked += 1
                if !PhantomTruth.withinTolerances(e) {
                    failures.append(String(format: "%@: LV volume error %.2f%%, EF error %.2f points", p.id, e.volume * 100, e.ef))
                }
            }
        }
        if let csv { try AtomicFile.write(rows.joined(separator: "\n") + "\n", to: csv) }
        if checkTruth {
            print(String(
                format: "truth check: %d patients, worst LV volume error %.2f%% (limit 5%%), worst EF error %.2f points (limit 3)",
                checked, worstVolume * 100, worstEF))
            guard checked > 0 else { throw ValidationError("--check-truth: no patient has a phantom_truth.json") }
            if !failures.isEmpty {
                failures.forEach { print($0) }
                throw ExitCode(1)
            }
        }
    }
}
