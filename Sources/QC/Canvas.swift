import CCairo
import Foundation

/// An RGB colour with 8-bit channels (opaque).
public struct RGB: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var r: UInt8, g: UInt8, b: UInt8

    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) {
        self.r = r
        self.g = g
        self.b = b
    }

    /// The ARGB32 word cairo stores for this colour, fully opaque.
    var argb: UInt32 { 0xFF00_0000 | UInt32(r) << 16 | UInt32(g) << 8 | UInt32(b) }

    init(argb v: UInt32) { self.init(UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)) }

    public var description: String { "rgb(\(r),\(g),\(b))" }
}

/// An ARGB32 cairo image surface with its context: text and rectangles through cairo, pixels
/// written directly, PNG encoded in memory. Owns both handles and frees them on deinit.
final class Canvas {
    let width: Int, height: Int
    private let surface: OpaquePointer
    private let cr: OpaquePointer

    init(width: Int, height: Int) throws {
        guard width > 0, height > 0, width <= 16384, height <= 16384 else {
            throw QCError.invalidInput("picture size \(width)x\(height) is outside 1...16384")
        }
        guard let s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, Int32(width), Int32(height)) else {
            throw QCError.cairo("cannot create a \(width)x\(height) surface")
        }
        let status = cairo_surface_status(s)
        guard status == CAIRO_STATUS_SUCCESS else {
            cairo_surface_destroy(s)
            throw QCError.cairo(Self.text(status))
        }
        guard let c = cairo_create(s) else {
            cairo_surface_destroy(s)
            throw QCError.cairo("cannot create a drawing context")
        }
        self.width = width
        self.height = height
        surface = s
        cr = c
    }

    deinit {
        cairo_destroy(cr)
        cairo_surface_destroy(surface)
    }

    static func text(_ status: cairo_status_t) -> String { String(cString: cairo_status_to_string(status)) }

    private func setColour(_ c: RGB) {
        cairo_set_source_rgb(cr, Double(c.r) / 255, Double(c.g) / 255, Double(c.b) / 255)
    }

    func fill(_ c: RGB, x: Double, y: Double, width w: Double, height h: Double) {
        setColour(c)
        cairo_rectangle(cr, x, y, w, h)
        cairo_fill(cr)
    }

    /// A horizontal or vertical line, aligned to whole pixels.
    func line(_ c: RGB, from a: (Double, Double), to b: (Double, Double), width lw: Double = 2) {
        setColour(c)
        cairo_set_line_width(cr, lw)
        cairo_move_to(cr, a.0, a.1)
        cairo_line_to(cr, b.0, b.1)
        cairo_stroke(cr)
    }

    /// Draws `s` with its baseline at y (cairo's toy text API, DejaVu Sans); returns the advance.
    @discardableResult
    func text(_ s: String, x: Double, y: Double, size: Double, bold: Bool = false, colour: RGB) -> Double {
        cairo_select_font_face(
            cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL)
        cairo_set_font_size(cr, size)
        setColour(colour)
        cairo_move_to(cr, x, y)
        cairo_show_text(cr, s)
        var ext = cairo_text_extents_t()
        cairo_text_extents(cr, s, &ext)
        return ext.x_advance
    }

    /// Writes a block of pixels (row-major, `w` x `h`) at (x0, y0), opaque; those that are nil
    /// leave the surface as it was (transparent on a new canvas).
    func blit(_ pixels: [RGB?], x0: Int, y0: Int, width w: Int, height h: Int) {
        precondition(pixels.count == w * h)
        cairo_surface_flush(surface)
        let stride = Int(cairo_image_surface_get_stride(surface))
        guard let base = cairo_image_surface_get_data(surface) else { return }
        for y in 0..<h where y0 + y >= 0 && y0 + y < height {
            let row = UnsafeMutableRawPointer(base + (y0 + y) * stride).assumingMemoryBound(to: UInt32.self)
            for x in 0..<w where x0 + x >= 0 && x0 + x < width { if let p = pixels[y * w + x] { row[x0 + x] = p.argb } }
        }
        cairo_surface_mark_dirty(surface)
    }

    /// Writes a block of opaque pixels.
    func blit(_ pixels: [RGB], x0: Int, y0: Int, width w: Int, height h: Int) {
        blit(pixels.map(Optional.some), x0: x0, y0: y0, width: w, height: h)
    }

    /// The picture as PNG bytes.
    /// The pixels as interleaved 8-bit RGB, row-major (for a DICOM secondary capture).
    func rgb() -> [UInt8] {
        cairo_surface_flush(surface)
        let stride = Int(cairo_image_surface_get_stride(surface))
        guard let base = cairo_image_surface_get_data(surface) else { return [] }
        var out = [UInt8](repeating: 0, count: 3 * width * height)
        for y in 0..<height {
            let row = UnsafeMutableRawPointer(base + y * stride).assumingMemoryBound(to: UInt32.self)
            for x in 0..<width {
                let c = RGB(argb: row[x]), i = 3 * (y * width + x)
                out[i] = c.r; out[i + 1] = c.g; out[i + 2] = c.b
            }
        }
        return out
    }

    func png() throws -> Data {
        cairo_surface_flush(surface)
        let status = cairo_status(cr)
        guard status == CAIRO_STATUS_SUCCESS else { throw QCError.cairo(Self.text(status)) }
        let sink = ByteSink()
        let written = cairo_surface_write_to_png_stream(
            surface,
            { closure, bytes, length in
                guard let closure, let bytes else { return CAIRO_STATUS_WRITE_ERROR }
                Unmanaged<ByteSink>.fromOpaque(closure).takeUnretainedValue().data.append(bytes, count: Int(length))
                return CAIRO_STATUS_SUCCESS
            }, Unmanaged.passUnretained(sink).toOpaque())
        guard written == CAIRO_STATUS_SUCCESS else { throw QCError.cairo(Self.text(written)) }
        return sink.data
    }
}

private final class ByteSink {
    var data = Data()
}

/// A decoded PNG's pixels, read back through cairo (for checks and tests).
public struct DecodedPicture: Sendable {
    public let width: Int, height: Int
    /// Row-major RGB pixels (alpha dropped).
    public let pixels: [RGB]

    public subscript(x: Int, y: Int) -> RGB { pixels[y * width + x] }

    /// Reads a PNG file with cairo's decoder; throws `QCError.cairo` if it is not a valid PNG.
    public static func read(_ path: String) throws -> DecodedPicture {
        guard let s = cairo_image_surface_create_from_png(path) else { throw QCError.cairo("cannot decode \(path)") }
        defer { cairo_surface_destroy(s) }
        let status = cairo_surface_status(s)
        guard status == CAIRO_STATUS_SUCCESS else { throw QCError.cairo("\(path): \(Canvas.text(status))") }
        let w = Int(cairo_image_surface_get_width(s)), h = Int(cairo_image_surface_get_height(s))
        let stride = Int(cairo_image_surface_get_stride(s))
        guard let base = cairo_image_surface_get_data(s) else { throw QCError.cairo("\(path): no pixel data") }
        var px: [RGB] = []
        px.reserveCapacity(w * h)
        for y in 0..<h {
            let row = UnsafeMutableRawPointer(base + y * stride).assumingMemoryBound(to: UInt32.self)
            for x in 0..<w { px.append(RGB(argb: row[x])) }
        }
        return DecodedPicture(width: w, height: h, pixels: px)
    }
}
