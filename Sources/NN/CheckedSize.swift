/// Sizes read from untrusted files, multiplied and added without overflow: nil where a value
/// is negative or the result does not fit an Int (a trap otherwise).
public enum CheckedSize {
    public static func product(_ xs: [Int]) -> Int? {
        var p = 1
        for x in xs {
            guard x >= 0 else { return nil }
            let (r, overflow) = p.multipliedReportingOverflow(by: x)
            if overflow { return nil }
            p = r
        }
        return p
    }

    public static func multiply(_ a: Int, _ b: Int) -> Int? {
        let (r, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? nil : r
    }

    public static func add(_ a: Int, _ b: Int) -> Int? {
        let (r, overflow) = a.addingReportingOverflow(b)
        return overflow ? nil : r
    }
}
