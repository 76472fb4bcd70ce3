//! HTTP adapters of the outbound ports: the reference endpoints and the callback notifier. The
//! worker is given them as it is given the stores, so a test or another transport can replace
//! them.

use taogate_app::ports;
use taogate_core::{config, domain};

mod callback;
mod reference;

pub use callback::{CALLBACK_TRY_TIMEOUT, CallbackError, DELIVERY_ID_HEADER, HttpCallbacks};
pub use reference::HttpReference;
