import CardiacImaging
import Foundation
import Testing

@testable import QC

/// A synthetic short-axis stack: LV disk, myocardial ring, RV blob beside it, tapering from
/// slice `base` (largest) to `apex`; image intensities blood 200, myocardium 60, rest 30.
struct Stack {
    var image: Volume
    var labels: LabelMap

    init(
        nx: Int = 96, ny: Int = 80, nz: Int = 8, spacing: SIMD3<Double> = SIMD3(1.5, 1.5, 8), base: Int = 1, apex: Int = 6,
        lvRadiusMM: Double = 22, scale: Double = 1, rv: Bool = true, myo: Bool = true, lv: Bool = true
    ) {
        let geometry = VolumeGeometry(spacing: spacing, origin: SIMD3(-40, 12, 3), direction: [SIMD3(1, 0, 0), SIMD3(0, 1, 0), SIMD3(0, 0, 1)])
        let shape = GridShape(nx, ny, nz)
        var labels = [UInt8](repeating: 0, count: shape.count), pixels = [Float](repeating: 30, count: shape.count)
        let cx = Double(nx) * spacing.x / 2, cy = Double(ny) * spacing.y / 2
        let span = max(1, abs(apex - base))
        for k in 0..<nz where k >= min(base, apex) && k <= max(base, apex) {
            // Radius shrinks from base to apex.
            let t = Double(abs(k - base)) / Double(span)
            let r = lvRadiusMM * scale * (1 - 0.6 * t)
            for j in 0..<ny {
                for i in 0..<nx {
                    let x = (Double(i) + 0.5) * spacing.x - cx, y = (Double(j) + 0.5) * spacing.y - cy
                    let d = (x * x + y * y).squareRoot()
                    let rvd = ((x + r + 14) * (x + r + 14) + y * y).squareRoot()
                    var v: UInt8 = 0
                    if d < r { v = lv ? 3 : 0 } else if d < r + 8 { v = myo ? 2 : 0 } else if rvd < r * 0.8 && k <= base + span / 2 + 1 { v = rv ? 1 : 0 }
                    let idx = (k * ny + j) * nx + i
                    labels[idx] = v
                    pixels[idx] = d < r || (v == 1) ? 200 : (d < r + 8 ? 60 : 30)
                }
            }
        }
        image = Volume(shape: shape, geometry: geometry, floats: pixels)
        self.labels = LabelMap(shape: shape, geometry: geometry, labels: labels)
    }
}

@Suite struct QCTests {
    func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "qc-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    func report(_ ed: Stack, _ es: Stack, subject: String? = nil) throws -> FunctionReport {
        try ClinicalStats.report(ed: ed.labels, es: es.labels, heightCm: 175, weightKg: 70, subject: subject)
    }

    let note = QCPicture.Annotations(modelVersion: "v0003", date: "2026-12-01")

    /// The colour of each structure at every panel pixel, counted per panel and label.
    func contourPixels(_ pic: DecodedPicture, _ panel: QCPicture.Panel) -> [CardiacLabel: [(Int, Int)]] {
        var out: [CardiacLabel: [(Int, Int)]] = [:]
        for y in 0..<panel.height {
            for x in 0..<panel.width {
                let c = pic[panel.x + x, panel.y + y]
                if let label = QCPicture.colours.first(where: { $0.value == c })?.key { out[label, default: []].append((x, y)) }
            }
        }
        return out
    }

    @Test func pngDecodesWithTheReportedSizeAndIsWrittenAtomically() throws {
        let ed = Stack(), es = Stack(scale: 0.75)
        let dir = try tempDir(), path = dir + "/qc.png"
        let r = try QCPicture.write(
            to: path, edImage: ed.image, edLabels: ed.labels, esImage: es.image, esLabels: es.labels, report: try report(ed, es),
            annotations: note)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(Array(bytes.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        #expect(bytes == r.png)
        let pic = try DecodedPicture.read(path)
        #expect(pic.width == r.width && pic.height == r.height)
        #expect(r.panels.count == 6)
        // Only the picture is left: no temporary file beside it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["qc.png"])
        // A file that is not a PNG is refused by the decoder the test relies on.
        try AtomicFile.write("not a png", to: dir + "/bad.png")
        #expect(throws: QCError.self) { _ = try DecodedPicture.read(dir + "/bad.png") }
    }

    @Test func contoursFollowTheLabelsAndAbsentClassesHaveNone() throws {
        // No RV anywhere: its colour must not appear; LV and Myo contours must, on their voxels.
        let ed = Stack(rv: false), es = Stack(scale: 0.7, rv: false)
        let dir = try tempDir(), path = dir + "/qc.png"
        let r = try QCPicture.write(
            to: path, edImage: ed.image, edLabels: ed.labels, esImage: es.image, esLabels: es.labels, report: try report(ed, es),
            annotations: note)
        let pic = try DecodedPicture.read(path)
        for panel in r.panels {
            let maps = panel.phase == "ED" ? ed.labels : es.labels
            let slice = maps.slice(panel.slice)
            let found = contourPixels(pic, panel)
            #expect(found[.rv] == nil, "RV colour in \(panel.phase) \(panel.position)")
            for label in [CardiacLabel.lv, .myo] {
                let pixels = try #require(found[label], "no \(label.name) contour in \(panel.phase) \(panel.position)")
                // Every contour pixel of a class shows a voxel of that class.
                for (x, y) in pixels {
                    let (i, j) = panel.voxel(x: x, y: y)
                    #expect(slice[i, j] == label.rawValue)
                }
                // A contour, not a fill: far fewer pixels than the class covers on the panel.
                var covered = 0
                for y in 0..<panel.height { for x in 0..<panel.width where slice[panel.voxel(x: x, y: y).i, panel.voxel(x: x, y: y).j] == label.rawValue { covered += 1 } }
                #expect(pixels.count * 3 < covered, "\(label.name): \(pixels.count) contour of \(covered) covered")
            }
        }
        // With the RV present its colour appears on the basal panels.
        let ed2 = Stack(), es2 = Stack(scale: 0.7)
        let r2 = try QCPicture.write(
            to: path, edImage: ed2.image, edLabels: ed2.labels, esImage: es2.image, esLabels: es2.labels,
            report: try report(ed2, es2), annotations: note)
        let pic2 = try DecodedPicture.read(path)
        let basal = try #require(r2.panels.first { $0.phase == "ED" && $0.position == .basal })
        #expect(contourPixels(pic2, basal)[.rv] != nil)
    }

    @Test func slicesAreChosenByTheLVExtentWithTheBaseAtTheLargerEnd() throws {
        let a = Stack(nz: 10, base: 2, apex: 7)
        let choice = SliceSelection.choose(a.labels, baseAtZero: SliceSelection.baseAtSliceZero(ed: a.labels))
        #expect(choice == SliceChoice(basal: 2, mid: 4, apical: 7, basis: "LV"))
        // Stack stored apex first: the base is the high end.
        let b = Stack(nz: 10, base: 8, apex: 3)
        let c2 = SliceSelection.choose(b.labels, baseAtZero: SliceSelection.baseAtSliceZero(ed: b.labels))
        #expect(c2.basal == 8 && c2.apical == 3 && c2.basis == "LV")
        // No LV: the myocardium's extent is used instead.
        let noLV = Stack(nz: 10, base: 1, apex: 5, lv: false)
        #expect(SliceSelection.choose(noLV.labels, baseAtZero: true) == SliceChoice(basal: 1, mid: 3, apical: 5, basis: "Myo"))
    }

    @Test func anisotropicNonSquareImageKeepsThePhysicalAspect() throws {
        // Pixels twice as tall as wide: a round LV (radius 22 mm) is 29 x 15 voxels. On the
        // picture it must be round again, and the panel's shape must match the crop in mm.
        let sp = SIMD3(0.75, 1.5, 8.0)
        let ed = Stack(nx: 200, ny: 90, spacing: sp), es = Stack(nx: 200, ny: 90, spacing: sp, scale: 0.8)
        let dir = try tempDir(), path = dir + "/qc.png"
        let r = try QCPicture.write(
            to: path, edImage: ed.image, edLabels: ed.labels, esImage: es.image, esLabels: es.labels, report: try report(ed, es),
            annotations: note)
        let pic = try DecodedPicture.read(path)
        let panel = try #require(r.panels.first { $0.phase == "ED" && $0.position == .basal })
        let mmW = Double(panel.columns.count) * sp.x, mmH = Double(panel.rows.count) * sp.y
        #expect(abs(Double(panel.width) / Double(panel.height) - mmW / mmH) < 0.02)
        #expect(abs(Double(panel.width) - mmW * panel.pixelsPerMM) <= 1 && abs(Double(panel.height) - mmH * panel.pixelsPerMM) <= 1)
        // Enlarged for legibility: the panel's long side is the style's, more picture pixels
        // than voxels along both axes.
        #expect(max(panel.width, panel.height) == QCPicture.Style().panelSide)
        #expect(panel.width > panel.columns.count && panel.height > 2 * panel.rows.count)
        let lv = try #require(contourPixels(pic, panel)[.lv])
        let xs = lv.map(\.0), ys = lv.map(\.1)
        let w = Double(xs.max()! - xs.min()! + 1), h = Double(ys.max()! - ys.min()! + 1)
        #expect(abs(w / h - 1) < 0.08, "LV contour is \(w) x \(h) picture pixels")
        // Its diameter in mm matches the drawn 44 mm within a voxel row.
        #expect(abs(h / panel.pixelsPerMM - 44) < 2 * sp.y, "\(h / panel.pixelsPerMM) mm")
    }

    @Test func emptyLabelMapsRenderWithoutContours() throws {
        let ed = Stack(rv: false, myo: false, lv: false), es = ed
        let dir = try tempDir(), path = dir + "/qc.png"
        let r = try QCPicture.write(
            to: path, edImage: ed.image, edLabels: ed.labels, esImage: es.image, esLabels: es.labels, report: try report(ed, es),
            annotations: note)
        let pic = try DecodedPicture.read(path)
        #expect(r.ed.basis == "no labels" && r.ed.basal == 0 && r.ed.apical == 7)
        for panel in r.panels { #expect(contourPixels(pic, panel).isEmpty) }
        // The checks raised by the report are printed.
        #expect(r.textLines.contains("! " + QCFlag.noLVAtED.message))
    }

    @Test func mismatchedGridsAndCineInputGiveSpecificErrors() throws {
        let ed = Stack(), es = Stack(scale: 0.8), other = Stack(nx: 90)
        let rep = try report(ed, es)
        #expect {
            _ = try QCPicture.render(edImage: ed.image, edLabels: other.labels, esImage: es.image, esLabels: es.labels, report: rep, annotations: note)
        } throws: { error in
            guard case QCError.gridMismatch(let s) = error else { return false }
            return s.hasPrefix("ED labels")
        }
        #expect {
            _ = try QCPicture.render(edImage: ed.image, edLabels: ed.labels, esImage: other.image, esLabels: other.labels, report: rep, annotations: note)
        } throws: { error in
            guard case QCError.gridMismatch(let s) = error else { return false }
            return s.contains("ES frame")
        }
        var shifted = es.labels
        shifted.geometry = VolumeGeometry(spacing: SIMD3(1.5, 1.5, 8), origin: SIMD3(0, 0, 0), direction: [SIMD3(1, 0, 0), SIMD3(0, 1, 0), SIMD3(0, 0, 1)])
        #expect(throws: QCError.self) {
            _ = try QCPicture.render(edImage: ed.image, edLabels: ed.labels, esImage: es.image, esLabels: shifted, report: rep, annotations: note)
        }
        let cine = Volume(shape: GridShape(96, 80, 8, 2), geometry: ed.image.geometry, floats: [Float](repeating: 1, count: 96 * 80 * 16))
        #expect(throws: QCError.invalidInput("the ED image has 2 frames; pass one 3D frame")) {
            _ = try QCPicture.render(edImage: cine, edLabels: ed.labels, esImage: es.image, esLabels: es.labels, report: rep, annotations: note)
        }
    }

    @Test func noIdentifierUnlessPassedAndTheNumbersArePrinted() throws {
        let ed = Stack(), es = Stack(scale: 0.75)
        let rep = try report(ed, es, subject: "Doe^Jane 12345")
        let r = try QCPicture.render(edImage: ed.image, edLabels: ed.labels, esImage: es.image, esLabels: es.labels, report: rep, annotations: note)
        #expect(!r.textLines.joined().contains("Doe"))
        #expect(!r.textLines.joined().contains("12345"))
        #expect(r.textLines.contains(String(format: "EF   %.1f %%", rep.lv.ef!)))
        #expect(r.textLines.contains { $0.hasPrefix(String(format: "EDV  %.1f mL", rep.lv.edv)) })
        #expect(r.textLines.contains { $0.hasPrefix(String(format: "Mass %.1f g", rep.lvMass)) })
        #expect(r.textLines.contains("Model: v0003") && r.textLines.contains("Date: 2026-12-01"))
        var named = note
        named.subject = "study 7"
        let r2 = try QCPicture.render(edImage: ed.image, edLabels: ed.labels, esImage: es.image, esLabels: es.labels, report: rep, annotations: named)
        #expect(r2.textLines.contains("Subject: study 7"))
    }
}

/// The review page's slice strips: every slice, grey, and its contours on a transparent strip.
@Suite struct SliceStripsTests {
    @Test func everySliceIsDrawnAndTheContoursFollowItsLabels() throws {
        let ed = Stack(), es = Stack(scale: 0.7)
        let (strips, index) = try SliceStrips.render(
            edImage: ed.image, edLabels: ed.labels, esImage: es.image, esLabels: es.labels, edFrame: 1, esFrame: 9)
        #expect(strips.map(\.name) == ["slices_ed.png", "contours_ed.png", "slices_es.png", "contours_es.png"])
        #expect(index.slices == 8 && index.ed.frame == 1 && index.es.frame == 9)
        #expect(index.ed.image == "slices_ed.png" && index.es.contours == "contours_es.png")
        let crop = SliceSelection.crop(ed: ed.labels, es: es.labels, marginMM: 25)
        let dir = NSTemporaryDirectory() + "strips-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let colours = Set(QCPicture.colours.values)
        for (phase, stack) in [("ed", ed), ("es", es)] {
            var pics: [String: DecodedPicture] = [:]
            for s in strips where s.name.hasSuffix("_\(phase).png") {
                try s.png.write(to: URL(fileURLWithPath: dir + "/" + s.name))
                let pic = try DecodedPicture.read(dir + "/" + s.name)
                #expect(pic.width == index.panelWidth * index.slices && pic.height == index.panelHeight)
                pics[s.name] = pic
            }
            let grey = try #require(pics["slices_\(phase).png"]), overlay = try #require(pics["contours_\(phase).png"])
            #expect(!grey.pixels.contains { colours.contains($0) }, "a contour colour in the grey strip")
            for k in 0..<index.slices {
                let panel = QCPicture.Panel(phase: phase, position: .mid, slice: k, x: k * index.panelWidth, y: 0, width: index.panelWidth,
                                            height: index.panelHeight, pixelsPerMM: 1, columns: crop.i0...crop.i1, rows: crop.j0...crop.j1)
                let slice = stack.labels.slice(k)
                var found: Set<UInt8> = [], strangers = 0, misplaced = 0
                for y in 0..<panel.height {
                    for x in 0..<panel.width {
                        let c = overlay[panel.x + x, y]
                        if c == RGB(0, 0, 0) { continue }
                        guard let label = QCPicture.colours.first(where: { $0.value == c })?.key else { strangers += 1; continue }
                        let (i, j) = panel.voxel(x: x, y: y)
                        if slice[i, j] != label.rawValue { misplaced += 1 }
                        found.insert(label.rawValue)
                    }
                }
                #expect(strangers == 0 && misplaced == 0, "slice \(k) of \(phase): \(strangers) pixels not a contour colour, \(misplaced) off their class")
                // Each class on the slice has its contour; a slice without labels has none.
                let present = Set(slice.pixels).subtracting([0])
                #expect(found == present, "slice \(k) of \(phase): contours \(found.sorted()) for labels \(present.sorted())")
                // The grey slice differs from the next one (each panel is its own slice).
                if k + 1 < index.slices, !present.isEmpty {
                    let a = (0..<panel.width).map { grey[panel.x + $0, panel.height / 2] }
                    let b = (0..<panel.width).map { grey[panel.x + panel.width + $0, panel.height / 2] }
                    #expect(a != b, "slices \(k) and \(k + 1) of \(phase) look the same")
                }
            }
        }
        // A label map on another grid is refused, as the QC picture refuses it.
        let other = Stack(nx: 64)
        #expect(throws: QCError.self) {
            _ = try SliceStrips.render(edImage: ed.image, edLabels: other.labels, esImage: es.image, esLabels: es.labels, edFrame: 1, esFrame: 2)
        }
    }
}
