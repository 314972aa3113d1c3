import ArgumentParser
import CardiacImaging
import Foundation

struct PhantomCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "phantom",
        abstract: "Write synthetic cardiac cine MRI studies in the ACDC layout.",
        discussion: """
            Each patient folder holds Info.cfg, the 4D cine (patientNNN_4d.nii.gz), the ED and ES \
            frames with their ground truth (_gt), and phantom_truth.json with the analytic \
            LV / RV / myocardium volumes of every frame.
            """)

    @Option(help: "Output folder (created if missing).") var out: String
    @Option(help: "Number of patients.") var patients: Int = 20
    @Option(help: "Random seed: the same seed gives the same studies.") var seed: UInt64 = 1
    @Option(help: "Number of the first patient (patientNNN).") var first: Int = 1
    @Flag(help: "Write only the ED and ES frames, not the 4D cine (small files).") var noCine = false

    func validate() throws {
        guard patients >= 1 && patients <= 999 else { throw ValidationError("--patients must be 1...999") }
        guard first >= 1 && first + patients - 1 <= 999 else { throw ValidationError("patient numbers must stay within 1...999") }
    }

    func run() throws {
        let start = Date()
        let truths = try PhantomGenerator.generate(
            into: out, patients: patients, seed: seed, first: first, cine: !noCine)
        for t in truths {
            let p = t.parameters
            print(String(
                format: "%@  %-4@  %dx%dx%d x %2d frames  %.2f x %.2f x %.1f mm  LV EDV %.1f mL  ESV %.1f mL",
                t.patient, t.group, p.nx, p.ny, p.nz, p.nt, p.pixelSpacing, p.pixelSpacing, p.sliceSpacing,
                t.ed.lvDiscML, t.es.lvDiscML))
        }
        print(String(format: "wrote %d patients to %@ in %.1f s", truths.count, out, Date().timeIntervalSince(start)))
    }
}
