//! Who banks with the demo: fifty holders in three currencies, people and the businesses
//! they pay and are paid by. Each currency has a landlord (rent goes there), an employer
//! (it pays some of its people's salaries by transfer) and shops (card settlements).

/// What part an account plays in the demo's months.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// A person: salary, rent, card spending, money to friends.
    Person,
    /// Receives every rent of its currency.
    Landlord,
    /// Pays some of its currency's people their salary, by transfer.
    Employer,
    /// A shop or practice: card settlements in, supplier invoices out.
    Shop,
}

/// One account the demo opens.
#[derive(Clone, Copy, Debug)]
pub struct Member {
    pub holder: &'static str,
    pub currency: &'static str,
    pub part: Part,
}

const fn person(holder: &'static str, currency: &'static str) -> Member {
    Member {
        holder,
        currency,
        part: Part::Person,
    }
}

const fn business(holder: &'static str, currency: &'static str, part: Part) -> Member {
    Member {
        holder,
        currency,
        part,
    }
}

/// The accounts, in the order they are opened (ten a day over the first five days).
pub const CAST: [Member; 50] = [
    business("Hudson & Pike Property Management", "USD", Part::Landlord),
    business("Müller & Söhne Immobilien GmbH", "EUR", Part::Landlord),
    business("Greenwich Lettings Ltd", "GBP", Part::Landlord),
    business("Northwind Logistics Inc.", "USD", Part::Employer),
    business("Bäckerei Schäfer", "EUR", Part::Employer),
    business("Pennine Joinery Ltd", "GBP", Part::Employer),
    business("Blue Ridge Coffee Co.", "USD", Part::Shop),
    business("Café Lumière SARL", "EUR", Part::Shop),
    business("Thames Bookshop Ltd", "GBP", Part::Shop),
    business("Lakeside Dental LLC", "USD", Part::Shop),
    person("Zoë Brontë", "EUR"),
    person("José Álvarez", "EUR"),
    person("Marcus Johnson", "USD"),
    person("Priya Raman", "USD"),
    person("Oliver Hughes", "GBP"),
    person("Ingrid Johansson", "EUR"),
    person("Olivia Chen", "USD"),
    person("François Lefèvre", "EUR"),
    person("DeShawn Williams", "USD"),
    person("Amelia Clarke", "GBP"),
    person("María Fernanda López", "USD"),
    person("Anaïs Dubois", "EUR"),
    person("Ethan O'Connor", "USD"),
    person("Rhys Llewellyn", "GBP"),
    person("Jürgen Müller", "EUR"),
    person("Hannah Goldberg", "USD"),
    person("Małgorzata Kowalska", "EUR"),
    person("Kwame Mensah", "USD"),
    person("Aoife Byrne", "GBP"),
    person("Luca Bianchi", "EUR"),
    person("Sofia Rossi", "USD"),
    person("Eleni Papadopoulou", "EUR"),
    person("Tyler Nguyen", "USD"),
    person("Harpreet Kaur", "GBP"),
    person("Joaquín Ortega", "EUR"),
    person("Aaliyah Robinson", "USD"),
    person("Siobhán Ní Bhriain", "EUR"),
    person("Jorge Castañeda", "USD"),
    person("Callum MacLeod", "GBP"),
    person("Björn Lindqvist", "EUR"),
    person("Emily Park", "USD"),
    person("Chidi Okafor", "GBP"),
    person("Inês Carvalho", "EUR"),
    person("Noah Schwartz", "USD"),
    person("Niamh O'Sullivan", "GBP"),
    person("Chloé Tremblay", "USD"),
    person("Samuel Adeyemi", "USD"),
    person("Isabella Moreno", "USD"),
    business("Atelier Noé", "EUR", Part::Shop),
    person("Dmitri Volkov", "GBP"),
];

/// The index in [`CAST`] of the holder named `holder`.
///
/// # Panics
/// When no member has that name (the story names only members of the cast).
pub fn index_of(holder: &str) -> usize {
    CAST.iter()
        .position(|m| m.holder == holder)
        .unwrap_or_else(|| panic!("{holder} is not in the demo's cast"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cast_has_fifty_distinct_holders_in_three_currencies_each_with_its_businesses() {
        let mut names: Vec<&str> = CAST.iter().map(|m| m.holder).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 50);
        for currency in ["USD", "EUR", "GBP"] {
            for part in [Part::Landlord, Part::Employer, Part::Shop] {
                assert!(
                    CAST.iter()
                        .any(|m| m.currency == currency && m.part == part),
                    "{currency} has no {part:?}"
                );
            }
            let people = CAST
                .iter()
                .filter(|m| m.currency == currency && m.part == Part::Person)
                .count();
            assert!(people >= 5, "{currency} has {people} people");
        }
    }
}
