// What `investctl seed` puts in the test's database, by id: the demo user, its plans and deals.

export const DEMO_USER = "11111111-1111-4111-8111-111111111111";
export const ACTIVE = "a0000000-0000-4000-8000-000000000001";
export const PAUSED = "a0000000-0000-4000-8000-000000000002";
export const OPEN_DEAL = "d0000000-0000-4000-8000-000000000001";
export const SCARCE_DEAL = "d0000000-0000-4000-8000-000000000003";
