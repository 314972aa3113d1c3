import CardiacImaging
import Foundation

/// One test volume (a patient's ED or ES frame) scored for one method, fold and number of
/// training volumes: a row of results.csv.
public struct VolumeResult: Codable, Equatable, Sendable {
    public var fold: Int
    public var method: String
    /// Training volumes (0 for the box baseline, which does not train).
    public var volumes: Int
    public var patient: String
    public var frame: Int
    /// Dice per class: RV, Myo, LV.
    public var dice: [Double]
    /// ASSD in mm per class (nil where one of the masks is empty).
    public var assd: [Double?]

    public init(fold: Int, method: String, volumes: Int, patient: String, frame: Int, dice: [Double], assd: [Double?]) {
        self.fold = fold
        self.method = method
        self.volumes = volumes
        self.patient = patient
        self.frame = frame
        self.dice = dice
        self.assd = assd
    }

    public init(fold: Int, method: String, volumes: Int, patient: String, frame: Int, metrics m: VolumeMetrics) {
        let labels: [UInt8] = [1, 2, 3]
        self.init(fold: fold, method: method, volumes: volumes, patient: patient, frame: frame,
                  dice: labels.map { m[$0]?.dice ?? .nan }, assd: labels.map { m[$0]?.assd })
    }

    public var meanDice: Double { dice.reduce(0, +) / Double(dice.count) }
    /// Mean over the classes where ASSD is defined; nil if none is.
    public var meanASSD: Double? {
        let v = assd.compactMap { $0 }
        return v.isEmpty ? nil : v.reduce(0, +) / Double(v.count)
    }
}

/// A row of the paper-shaped table: one method and number of training volumes, each value the
/// mean (and sample standard deviation) over folds of the fold's mean over test volumes.
public struct TableRow: Codable, Equatable, Sendable {
    public var method: String
    public var label: String
    public var volumes: Int
    public var folds: Int
    /// Test volumes per fold.
    public var testVolumes: Int
    /// Means over folds: RV, Myo, LV, mean Dice, ASSD (mm); nil where undefined (an ASSD
    /// column with no defined distance at all).
    public var mean: [Double?]
    /// Sample standard deviations over folds (nil with a single fold).
    public var std: [Double?]
    /// Volume-classes whose ASSD is undefined (one mask empty), over all folds; the ASSD
    /// column averages the others.
    public var assdUndefined: Int
}

public enum ExperimentTable {
    static func mean(_ v: [Double]) -> Double { v.isEmpty ? .nan : v.reduce(0, +) / Double(v.count) }

    static func sampleStd(_ v: [Double]) -> Double? {
        guard v.count > 1 else { return nil }
        let m = mean(v)
        return (v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(v.count - 1)).squareRoot()
    }

    /// Aggregates per-volume results: within a fold, the mean over its test volumes (Dice per
    /// class, mean Dice = mean of the three, ASSD = mean over the volume-classes where it is
    /// defined); then mean and sample standard deviation over folds.
    public static func rows(_ results: [VolumeResult], labels: [String: String] = [:]) -> [TableRow] {
        var keys: [(String, Int)] = []
        for r in results where !keys.contains(where: { $0 == (r.method, r.volumes) }) { keys.append((r.method, r.volumes)) }
        func rank(_ m: String) -> Int { (try? ExperimentMethod(name: m))?.order ?? 99 }
        keys.sort { ($0.1, rank($0.0), $0.0) < ($1.1, rank($1.0), $1.0) }
        return keys.map { method, volumes in
            let mine = results.filter { $0.method == method && $0.volumes == volumes }
            let folds = Array(Set(mine.map(\.fold))).sorted()
            var perFold: [[Double]] = []  // [RV, Myo, LV, mean, ASSD] per fold
            var undefined = 0, counts: [Int] = []
            for f in folds {
                let rs = mine.filter { $0.fold == f }
                counts.append(rs.count)
                var v = (0..<3).map { c in mean(rs.map { $0.dice[c] }) }
                v.append(mean(rs.map(\.meanDice)))
                let distances = rs.flatMap { $0.assd.compactMap { $0 } }
                undefined += rs.reduce(0) { $0 + $1.assd.filter { $0 == nil }.count }
                v.append(mean(distances))
                perFold.append(v)
            }
            // A fold without any defined distance has no ASSD; it is left out of the ASSD mean.
            let m = (0..<5).map { i -> Double? in
                let v = perFold.map { $0[i] }.filter(\.isFinite)
                return v.isEmpty ? nil : mean(v)
            }
            let s = (0..<5).map { i in sampleStd(perFold.map { $0[i] }.filter(\.isFinite)) }
            let label = labels[method] ?? ((try? ExperimentMethod(name: method))?.label ?? method)
            return TableRow(method: method, label: label, volumes: volumes, folds: folds.count, testVolumes: counts.min() ?? 0,
                            mean: m, std: s, assdUndefined: undefined)
        }
    }

    /// The markdown table: Dice in % like the paper, ASSD in mm; "mean +- std" over folds.
    public static func markdown(_ rows: [TableRow]) -> String {
        func cell(_ m: Double?, _ s: Double?, scale: Double) -> String {
            guard let m else { return "-" }
            let v = String(format: "%.2f", m * scale)
            return s.map { v + String(format: " ± %.2f", $0 * scale) } ?? v
        }
        var out = "| training data | method | RV | Myo | LV | mean Dice | ASSD (mm) | ASSD n/a | folds x test volumes |\n"
        out += "|---|---|---|---|---|---|---|---|---|\n"
        for r in rows {
            let data = r.volumes == 0 ? "none (GT boxes)" : (r.volumes == 1 ? "1 volume" : "\(r.volumes) volumes")
            let cells = (0..<4).map { cell(r.mean[$0], r.std[$0], scale: 100) } + [cell(r.mean[4], r.std[4], scale: 1)]
            out += "| \(data) | \(r.label) | " + cells.joined(separator: " | ") + " | \(r.assdUndefined) | \(r.folds) x \(r.testVolumes) |\n"
        }
        return out
    }

    static let csvHeader = "fold,method,volumes,patient,frame,dice_rv,dice_myo,dice_lv,dice_mean,assd_rv,assd_myo,assd_lv,assd_mean"

    /// results.csv: one row per fold x method x volumes x test volume; empty ASSD where undefined.
    public static func csv(_ results: [VolumeResult]) -> String {
        func f(_ v: Double?) -> String { v.map { String(format: "%.6f", $0) } ?? "" }
        var out = csvHeader + "\n"
        for r in results {
            let fields = ["\(r.fold)", r.method, "\(r.volumes)", r.patient, "\(r.frame)"] + r.dice.map(f) + [f(r.meanDice)]
                + r.assd.map(f) + [f(r.meanASSD)]
            out += fields.joined(separator: ",") + "\n"
        }
        return out
    }
}
