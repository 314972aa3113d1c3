import CardiacImaging
import Foundation

/// Why a QC picture could not be made. Each case says which input is wrong.
public enum QCError: Error, Equatable, CustomStringConvertible {
    /// A label map is not on its image's grid, or the ED and ES frames differ in grid.
    case gridMismatch(String)
    case invalidInput(String)
    case cairo(String)

    public var description: String {
        switch self {
        case .gridMismatch(let s): "QC picture: grid mismatch: \(s)"
        case .invalidInput(let s): "QC picture: invalid input: \(s)"
        case .cairo(let s): "QC picture: cairo: \(s)"
        }
    }
}

/// The QC picture a clinician glances at: for ED and ES, the basal, mid-ventricular and apical
/// slices (ends and middle of the LV's extent in the labels) in grey with a 1-pixel contour per
/// structure, at the true physical aspect ratio and enlarged; beside them a legend, the key
/// function numbers, the checks raised, the model version and date. Nothing identifies the
/// patient unless `Annotations.subject` is given (the report's own `subject` is never drawn).
public enum QCPicture {
    /// Text printed on the picture besides the numbers.
    public struct Annotations: Sendable {
        public var modelVersion: String
        public var date: String
        /// Printed only when given: the caller decides whether an identifier may appear.
        public var subject: String?
        public var title: String

        public init(
            modelVersion: String, date: String, subject: String? = nil, title: String = "AutoSAM cardiac MRI - QC"
        ) {
            self.modelVersion = modelVersion
            self.date = date
            self.subject = subject
            self.title = title
        }
    }

    public struct Style: Sendable {
        /// The longer side of each slice panel, in picture pixels.
        public var panelSide = 300
        /// Space kept around the structures when cropping, in mm.
        public var marginMM = 25.0
        public var fontSize = 14.0
        public init() {}
    }

    /// Contour colour of each structure (none is grey, so no image pixel can take it).
    public static let colours: [CardiacLabel: RGB] = [
        .rv: RGB(40, 140, 255), .myo: RGB(60, 220, 60), .lv: RGB(255, 60, 60),
    ]
    static let background = RGB(24, 24, 24), ink = RGB(235, 235, 235), dim = RGB(170, 170, 170)

    /// One slice panel: where it is on the picture and what it shows.
    public struct Panel: Sendable {
        public var phase: String
        public var position: SlicePosition
        /// Slice index k (0-based).
        public var slice: Int
        public var x: Int, y: Int, width: Int, height: Int
        /// Picture pixels per millimetre (the same along both axes).
        public var pixelsPerMM: Double
        /// The voxel columns (i) and rows (j) the panel shows.
        public var columns: ClosedRange<Int>, rows: ClosedRange<Int>

        /// The voxel (i, j) whose label a panel pixel shows (nearest neighbour).
        public func voxel(x: Int, y: Int) -> (i: Int, j: Int) {
            let si = Double(columns.count) / Double(width), sj = Double(rows.count) / Double(height)
            let i = Double(columns.lowerBound) - 0.5 + (Double(x) + 0.5) * si
            let j = Double(rows.lowerBound) - 0.5 + (Double(y) + 0.5) * sj
            return (min(columns.upperBound, max(columns.lowerBound, Int(i.rounded()))), min(rows.upperBound, max(rows.lowerBound, Int(j.rounded()))))
        }
    }

    /// A rendered picture: the PNG bytes, its size, the panels and the text lines drawn.
    public struct Rendered: Sendable {
        public var png: Data
        /// The same picture as interleaved 8-bit RGB, row-major (width x height x 3).
        public var rgb: [UInt8]
        public var width: Int, height: Int
        public var panels: [Panel]
        public var ed: SliceChoice, es: SliceChoice
        public var textLines: [String]
    }

    /// Renders the picture (PNG bytes in memory). The labels must lie on their image's grid
    /// and both frames must share one grid.
    public static func render(
        edImage: Volume, edLabels: LabelMap, esImage: Volume, esLabels: LabelMap, report: FunctionReport,
        annotations: Annotations, style: Style = Style()
    ) throws -> Rendered {
        try validate(edImage: edImage, edLabels: edLabels, esImage: esImage, esLabels: esLabels)
        guard style.panelSide >= 32, style.panelSide <= 2048 else {
            throw QCError.invalidInput("panel side \(style.panelSide) is outside 32...2048 pixels")
        }
        let baseAtZero = SliceSelection.baseAtSliceZero(ed: edLabels)
        let choices = (ed: SliceSelection.choose(edLabels, baseAtZero: baseAtZero), es: SliceSelection.choose(esLabels, baseAtZero: baseAtZero))
        let crop = SliceSelection.crop(ed: edLabels, es: esLabels, marginMM: style.marginMM)
        let sp = edImage.geometry.spacing
        let wmm = Double(crop.i1 - crop.i0 + 1) * sp.x, hmm = Double(crop.j1 - crop.j0 + 1) * sp.y
        let pxPerMM = Double(style.panelSide) / max(wmm, hmm)
        let pw = max(1, Int((wmm * pxPerMM).rounded())), ph = max(1, Int((hmm * pxPerMM).rounded()))

        // Layout: two rows of three panels with captions, a scale bar, the text column.
        let margin = 16, gap = 12, caption = Int(style.fontSize * 1.6), lineH = Int(style.fontSize * 1.45)
        let textX = margin + 3 * pw + 2 * gap + 28, textW = Int(style.fontSize * 26)
        let lines = textLines(report: report, annotations: annotations, ed: choices.ed, es: choices.es, spacing: sp)
        let rowsBottom = margin + 2 * (caption + ph) + gap
        let width = textX + textW + margin
        let height = max(rowsBottom + 40 + margin, margin + (lines.count + 6) * lineH + margin)
        let canvas = try Canvas(width: width, height: height)
        canvas.fill(background, x: 0, y: 0, width: Double(width), height: Double(height))

        var panels: [Panel] = []
        for (row, (phase, image, labels, choice)) in [("ED", edImage, edLabels, choices.ed), ("ES", esImage, esLabels, choices.es)].enumerated() {
            let window = SliceSelection.window(image.floats())
            let y0 = margin + row * (caption + ph + gap) + caption
            for (col, pos) in SlicePosition.allCases.enumerated() {
                let x0 = margin + col * (pw + gap), k = choice[pos]
                let pixels = try panelPixels(image: image, labels: labels, slice: k, crop: crop, width: pw, height: ph, window: window)
                canvas.blit(pixels, x0: x0, y0: y0, width: pw, height: ph)
                canvas.text("\(phase)  \(pos.rawValue)  slice \(k + 1)/\(image.shape.nz)", x: Double(x0), y: Double(y0) - 6, size: style.fontSize, bold: col == 0, colour: ink)
                panels.append(Panel(phase: phase, position: pos, slice: k, x: x0, y: y0, width: pw, height: ph, pixelsPerMM: pxPerMM, columns: crop.i0...crop.i1, rows: crop.j0...crop.j1))
            }
        }
        // A 20 mm scale bar under the first ES panel (10 mm when 20 would not fit).
        let barMM = 20 * pxPerMM <= Double(pw) * 0.8 ? 20.0 : 10.0
        let barY = Double(rowsBottom + 14)
        canvas.line(ink, from: (Double(margin), barY), to: (Double(margin) + barMM * pxPerMM, barY))
        canvas.text(String(format: "%.0f mm", barMM), x: Double(margin) + barMM * pxPerMM + 8, y: barY + 5, size: style.fontSize * 0.9, colour: dim)

        // Text column: title, legend swatches, numbers.
        var y = Double(margin) + style.fontSize
        for line in lines {
            if let label = legendLabel(line) {
                canvas.fill(colours[label]!, x: Double(textX), y: y - style.fontSize * 0.8, width: 22, height: style.fontSize * 0.8)
                canvas.text(line, x: Double(textX) + 30, y: y, size: style.fontSize, colour: ink)
            } else if line.hasPrefix("# ") {
                canvas.text(String(line.dropFirst(2)), x: Double(textX), y: y, size: style.fontSize * 1.05, bold: true, colour: ink)
            } else {
                canvas.text(line, x: Double(textX), y: y, size: style.fontSize, colour: line.hasPrefix("! ") ? RGB(255, 200, 60) : ink)
            }
            y += Double(lineH)
        }
        return Rendered(png: try canvas.png(), rgb: canvas.rgb(), width: width, height: height, panels: panels, ed: choices.ed, es: choices.es, textLines: lines)
    }

    /// Renders the picture and writes it atomically to `path` (a reader sees the old file or
    /// the whole new one).
    @discardableResult
    public static func write(
        to path: String, edImage: Volume, edLabels: LabelMap, esImage: Volume, esLabels: LabelMap, report: FunctionReport,
        annotations: Annotations, style: Style = Style()
    ) throws -> Rendered {
        let r = try render(
            edImage: edImage, edLabels: edLabels, esImage: esImage, esLabels: esLabels, report: report,
            annotations: annotations, style: style)
        try AtomicFile.write(r.png, to: path)
        return r
    }

    static func validate(edImage: Volume, edLabels: LabelMap, esImage: Volume, esLabels: LabelMap) throws {
        for (name, image) in [("ED", edImage), ("ES", esImage)] {
            guard image.shape.nt == 1 else {
                throw QCError.invalidInput("the \(name) image has \(image.shape.nt) frames; pass one 3D frame")
            }
            let sp = image.geometry.spacing
            guard [sp.x, sp.y, sp.z].allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw QCError.invalidInput("the \(name) image has voxel spacing \(sp.x) x \(sp.y) x \(sp.z) mm")
            }
        }
        for (name, image, labels) in [("ED", edImage, edLabels), ("ES", esImage, esLabels)] {
            do { try labels.validate(against: image) } catch ImagingError.gridMismatch(let s) {
                throw QCError.gridMismatch("\(name) labels do not fit the \(name) image: \(s)")
            }
        }
        guard edImage.shape == esImage.shape else {
            throw QCError.gridMismatch("the ED frame is \(edImage.shape) but the ES frame is \(esImage.shape)")
        }
        guard edImage.geometry.matches(esImage.geometry) else {
            throw QCError.gridMismatch("the ED and ES frames have different affines")
        }
    }

    /// One panel's pixels: the cropped slice resampled to `width` x `height` (bilinear grey,
    /// nearest labels), with the inner boundary of each structure in its colour.
    static func panelPixels(
        image: Volume, labels: LabelMap, slice k: Int, crop: (i0: Int, i1: Int, j0: Int, j1: Int), width w: Int, height h: Int,
        window: (lo: Float, hi: Float), contours drawn: Bool = true
    ) throws -> [RGB] {
        let img = try image.slice(k), lab = labels.slice(k)
        let (nx, ny) = (img.width, img.height)
        let si = Double(crop.i1 - crop.i0 + 1) / Double(w), sj = Double(crop.j1 - crop.j0 + 1) / Double(h)
        // Index coordinate of display pixel centre x: voxel edges run from i0 - 0.5 to i1 + 0.5.
        let fi = (0..<w).map { Double(crop.i0) - 0.5 + (Double($0) + 0.5) * si }
        let fj = (0..<h).map { Double(crop.j0) - 0.5 + (Double($0) + 0.5) * sj }
        var display = [UInt8](repeating: 0, count: w * h)
        var out = [RGB](repeating: background, count: w * h)
        let span = window.hi - window.lo
        for y in 0..<h {
            let j = fj[y], jn = min(ny - 1, max(0, Int(j.rounded())))
            let j0 = min(ny - 1, max(0, Int(j.rounded(.down)))), j1 = min(ny - 1, j0 + 1), tj = Float(min(1, max(0, j - Double(j0))))
            for x in 0..<w {
                let i = fi[x], inn = min(nx - 1, max(0, Int(i.rounded())))
                let i0 = min(nx - 1, max(0, Int(i.rounded(.down)))), i1 = min(nx - 1, i0 + 1), ti = Float(min(1, max(0, i - Double(i0))))
                let a = img[i0, j0], b = img[i1, j0], c = img[i0, j1], d = img[i1, j1]
                let v = (a * (1 - ti) + b * ti) * (1 - tj) + (c * (1 - ti) + d * ti) * tj
                let g = v.isFinite ? UInt8(min(max((v - window.lo) / span, 0), 1) * 255) : 0
                out[y * w + x] = RGB(g, g, g)
                display[y * w + x] = lab[inn, jn]
            }
        }
        guard drawn else { return out }
        for (i, colour) in contours(display, width: w, height: h).enumerated() { if let colour { out[i] = colour } }
        return out
    }

    /// The inner boundary of each structure in its colour (nil elsewhere): a structure pixel with
    /// a 4-neighbour of another label (or the edge), of display-resolution labels.
    static func contours(_ display: [UInt8], width w: Int, height h: Int) -> [RGB?] {
        var out = [RGB?](repeating: nil, count: w * h)
        for y in 0..<h {
            for x in 0..<w {
                let v = display[y * w + x]
                guard let label = CardiacLabel(rawValue: v), let colour = colours[label] else { continue }
                let edge = x == 0 || y == 0 || x == w - 1 || y == h - 1
                if edge || display[y * w + x - 1] != v || display[y * w + x + 1] != v || display[(y - 1) * w + x] != v
                    || display[(y + 1) * w + x] != v
                {
                    out[y * w + x] = colour
                }
            }
        }
        return out
    }

    /// A panel's labels at display resolution (nearest neighbour), as `panelPixels` samples them.
    static func panelLabels(_ labels: LabelMap, slice k: Int, crop: (i0: Int, i1: Int, j0: Int, j1: Int), width w: Int, height h: Int) -> [UInt8] {
        let lab = labels.slice(k)
        let (nx, ny) = (labels.shape.nx, labels.shape.ny)
        let si = Double(crop.i1 - crop.i0 + 1) / Double(w), sj = Double(crop.j1 - crop.j0 + 1) / Double(h)
        var out = [UInt8](repeating: 0, count: w * h)
        for y in 0..<h {
            let j = Double(crop.j0) - 0.5 + (Double(y) + 0.5) * sj, jn = min(ny - 1, max(0, Int(j.rounded())))
            for x in 0..<w {
                let i = Double(crop.i0) - 0.5 + (Double(x) + 0.5) * si, inn = min(nx - 1, max(0, Int(i.rounded())))
                out[y * w + x] = lab[inn, jn]
            }
        }
        return out
    }

    static let legend: [(CardiacLabel, String)] = [(.rv, "RV cavity"), (.myo, "LV myocardium"), (.lv, "LV cavity")]

    static func legendLabel(_ line: String) -> CardiacLabel? { legend.first { $0.1 == line }?.0 }

    /// The text column, one entry per line: "# " starts a heading, "! " a raised check.
    static func textLines(
        report r: FunctionReport, annotations a: Annotations, ed: SliceChoice, es: SliceChoice, spacing sp: SIMD3<Double>
    ) -> [String] {
        func ml(_ v: Double) -> String { String(format: "%.1f mL", v) }
        func pct(_ v: Double?) -> String { v.map { String(format: "%.1f %%", $0) } ?? "n/a" }
        func idx(_ v: Double?, _ unit: String) -> String { v.map { String(format: "  (%.1f %@)", $0, unit) } ?? "" }
        var lines = ["# " + a.title]
        if let s = a.subject { lines.append("Subject: \(s)") }
        lines += ["Model: \(a.modelVersion)", "Date: \(a.date)", ""]
        lines += legend.map(\.1)
        lines += [
            "", "# Left ventricle",
            "EDV  " + ml(r.lv.edv) + idx(r.lv.edvIndex, "mL/m²"),
            "ESV  " + ml(r.lv.esv) + idx(r.lv.esvIndex, "mL/m²"),
            "SV   " + ml(r.lv.sv) + idx(r.lv.svIndex, "mL/m²"),
            "EF   " + pct(r.lv.ef),
            "Mass " + String(format: "%.1f g", r.lvMass) + idx(r.lvMassIndex, "g/m²"),
            "", "# Right ventricle",
            "EDV  " + ml(r.rv.edv) + idx(r.rv.edvIndex, "mL/m²"),
            "ESV  " + ml(r.rv.esv) + idx(r.rv.esvIndex, "mL/m²"),
            "EF   " + pct(r.rv.ef),
        ]
        if let bsa = r.bsa { lines.append(String(format: "BSA %.2f m² (Mosteller)", bsa)) }
        lines += ["", "# Checks"]
        lines += r.flags.isEmpty ? ["none raised"] : r.flags.map { "! " + $0.message }
        lines += [
            "", String(format: "Voxels %.2f x %.2f x %.1f mm", sp.x, sp.y, sp.z),
            "Slices by \(ed.basis) extent (ED), \(es.basis) (ES)",
        ]
        return lines
    }
}
