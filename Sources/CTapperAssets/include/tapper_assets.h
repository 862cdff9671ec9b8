#ifndef TAPPER_ASSETS_H
#define TAPPER_ASSETS_H

// Files the gateway serves itself (generated into tapper_assets.c by scripts/generate-assets).
// Each function returns the file's bytes (static, never freed) and sets *length.

const unsigned char *tapper_asset_swagger_ui_bundle_js(unsigned long *length);
const unsigned char *tapper_asset_swagger_ui_css(unsigned long *length);
const unsigned char *tapper_asset_swagger_ui_license(unsigned long *length);
const char *tapper_asset_swagger_ui_version(void);

#endif
