import Testing
@Test func gatewayPlaceholder() {}
