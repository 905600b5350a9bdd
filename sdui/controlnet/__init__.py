"""ControlNet, built in: model files, preprocessors, units as the sd-webui-controlnet extension's API sends them,
and the residuals each unit adds to the UNet's skip connections during sampling."""
