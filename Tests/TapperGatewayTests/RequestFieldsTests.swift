import Testing

@testable import TapperGateway

/// The one-word `Host` name test tracing's header scan uses.
@Suite struct RequestFieldsTests {
    @Test func hostIsRecognisedInAnyCaseAndNothingElseIs() {
        let host = Array("host".utf8)
        for variant in 0..<16 {
            let name = host.enumerated().map { i, b in variant & (1 << i) != 0 ? b - 0x20 : b }
            #expect(name.withUnsafeBytes { RequestAdmission.Request.isHost($0, 0..<4) }, "\(String(decoding: name, as: UTF8.self))")
        }
        // Any other byte at any position: not Host (a leading byte too, read at an offset).
        for position in 0..<4 {
            for byte in 0...255 where UInt8(byte) | 0x20 != host[position] {
                var name = [UInt8(ascii: "x")] + host
                name[1 + position] = UInt8(byte)
                #expect(!name.withUnsafeBytes { RequestAdmission.Request.isHost($0, 1..<5) }, "byte \(byte) at \(position)")
            }
        }
    }
}
