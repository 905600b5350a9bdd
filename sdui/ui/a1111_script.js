// The page helpers A1111's script.js offers and extensions' JavaScript calls: gradioApp(), the onUi* callback
// registries (run from a MutationObserver, as in A1111), the current tab, visibility checks and the `opts` object.
(function () {
    "use strict";
    const callbacks = {update: [], afterUpdate: [], loaded: [], tabChange: [], optionsChanged: [], optionsAvailable: []};
    let loaded = false;
    let currentTab = null;
    let afterUpdateTimer = null;

    window.gradioApp = function () {
        const elements = document.getElementsByTagName("gradio-app");
        const app = elements.length ? elements[0] : document;
        return app.shadowRoot || app;
    };
    window.opts = window.opts || {};
    window.onUiUpdate = (cb) => callbacks.update.push(cb);
    window.onAfterUiUpdate = (cb) => callbacks.afterUpdate.push(cb);
    window.onUiLoaded = (cb) => callbacks.loaded.push(cb);
    window.onUiTabChange = (cb) => callbacks.tabChange.push(cb);
    window.onOptionsChanged = (cb) => callbacks.optionsChanged.push(cb);
    window.onOptionsAvailable = (cb) => callbacks.optionsAvailable.push(cb);

    function run(list, argument) {
        for (const cb of list) {
            try {
                cb(argument);
            } catch (e) {
                console.error("error running an extension's callback", e);
            }
        }
    }

    window.get_uiCurrentTab = function () {
        return gradioApp().querySelector("#tabs > .tab-nav > button.selected, #tabs button[role=tab][aria-selected=true]");
    };
    window.get_uiCurrentTabContent = function () {
        return gradioApp().querySelector("#tabs > .tabitem:not([style*='display: none']), #tabs [role=tabpanel]:not([hidden])");
    };
    window.uiElementIsVisible = function (el) {
        if (el === document) return true;
        const style = window.getComputedStyle(el);
        return style.display !== "none" && (el.parentElement ? uiElementIsVisible(el.parentElement) : true);
    };
    window.uiElementInSight = function (el) {
        const rect = el.getBoundingClientRect();
        return rect.top < window.innerHeight && rect.bottom > 0;
    };

    function start() {
        function check(mutations) {
            if (!loaded && gradioApp().querySelector("#txt2img_prompt")) {
                loaded = true;
                run(callbacks.loaded);
            }
            if (mutations) run(callbacks.update, mutations);
            clearTimeout(afterUpdateTimer);
            afterUpdateTimer = setTimeout(() => run(callbacks.afterUpdate), 200);
            const tab = get_uiCurrentTab();
            if (tab && tab !== currentTab) {
                currentTab = tab;
                run(callbacks.tabChange);
            }
        }
        new MutationObserver(check).observe(gradioApp(), {childList: true, subtree: true});
        check(null);  // the page may already be there: Gradio adds these scripts to the head after loading
    }

    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", start);
    } else {
        start();
    }
})();
