import CardiacImaging
import Foundation

/// Every slice of the ED and ES frames side by side, for the review page's slice slider: per
/// phase one grey PNG and one of the contours alone (transparent elsewhere, laid over it), all
/// cropped around the heart (the QC picture's crop, with a wider margin) at the true aspect
/// ratio. Slice k is the panel at x = k * panelWidth. `index` describes them (slices.json in a
/// study's outbox folder).
public enum SliceStrips {
    public struct Strip: Sendable {
        /// File name in the study's outbox folder, e.g. `slices_ed.png`.
        public var name: String
        public var png: Data
    }

    /// What slices.json holds: where the strips are and how to cut them.
    public struct Index: Codable, Equatable, Sendable {
        public struct Phase: Codable, Equatable, Sendable {
            /// 1-based frame number.
            public var frame: Int
            /// The slices, grey.
            public var image: String
            /// The structures' contours on a transparent background, to lay over `image`.
            public var contours: String
        }
        public var slices: Int
        public var panelWidth: Int
        public var panelHeight: Int
        public var ed: Phase
        public var es: Phase
    }

    /// Renders the four strips. `side` is the longer panel side in pixels.
    public static func render(
        edImage: Volume, edLabels: LabelMap, esImage: Volume, esLabels: LabelMap, edFrame: Int, esFrame: Int,
        side: Int = 192, marginMM: Double = 25
    ) throws -> (strips: [Strip], index: Index) {
        try QCPicture.validate(edImage: edImage, edLabels: edLabels, esImage: esImage, esLabels: esLabels)
        guard side >= 32, side <= 1024 else { throw QCError.invalidInput("panel side \(side) is outside 32...1024 pixels") }
        let crop = SliceSelection.crop(ed: edLabels, es: esLabels, marginMM: marginMM)
        let sp = edImage.geometry.spacing
        let wmm = Double(crop.i1 - crop.i0 + 1) * sp.x, hmm = Double(crop.j1 - crop.j0 + 1) * sp.y
        let pxPerMM = Double(side) / max(wmm, hmm)
        let pw = max(1, Int((wmm * pxPerMM).rounded())), ph = max(1, Int((hmm * pxPerMM).rounded()))
        let nz = edImage.shape.nz
        guard pw * nz <= 16384 else { throw QCError.invalidInput("\(nz) slices of \(pw) pixels do not fit one strip") }
        var strips: [Strip] = []
        for (phase, image, labels) in [("ed", edImage, edLabels), ("es", esImage, esLabels)] {
            let window = SliceSelection.window(image.floats())
            let grey = try Canvas(width: pw * nz, height: ph), overlay = try Canvas(width: pw * nz, height: ph)
            for k in 0..<nz {
                let pixels = try QCPicture.panelPixels(
                    image: image, labels: labels, slice: k, crop: crop, width: pw, height: ph, window: window, contours: false)
                grey.blit(pixels, x0: k * pw, y0: 0, width: pw, height: ph)
                let display = QCPicture.panelLabels(labels, slice: k, crop: crop, width: pw, height: ph)
                overlay.blit(QCPicture.contours(display, width: pw, height: ph), x0: k * pw, y0: 0, width: pw, height: ph)
            }
            strips.append(Strip(name: "slices_\(phase).png", png: try grey.png()))
            strips.append(Strip(name: "contours_\(phase).png", png: try overlay.png()))
        }
        let index = Index(
            slices: nz, panelWidth: pw, panelHeight: ph,
            ed: .init(frame: edFrame, image: "slices_ed.png", contours: "contours_ed.png"),
            es: .init(frame: esFrame, image: "slices_es.png", contours: "contours_es.png"))
        return (strips, index)
    }
}
