//! Test fixture: a content-filter plugin whose behaviour (ok, panic, fail, hang) is chosen by its config
