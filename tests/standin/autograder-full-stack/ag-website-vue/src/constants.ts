// STAND-IN (abridged) of ag-website-vue/src/constants.ts at 2024.08.0: the constants a
// deployer tweaks, with upstream's defaults.

// Who students should contact when something goes wrong. UPDATE for your site.
export const SYSADMIN_CONTACT = 'your instructor or system administrator';

// Must match MAX_SUBPROCESS_TIMEOUT in autograder-server/autograder/core/constants.py
export const MAX_COMMAND_TIMEOUT = 90;

export const MAX_STACK_SIZE_LIMIT = 100000000;
export const MAX_PROCESS_LIMIT = 150;
